"""Command-line tools over finished runs: ``python -m jaxlocal.tools.<name>``.

- :mod:`~jaxlocal.tools.runs`: a run's config, data and last states, restored from its workdir;
- :mod:`~jaxlocal.tools.tsne`: t-SNE maps of one block in several Associated Learning runs;
- :mod:`~jaxlocal.tools.metafeatures`: every block's class-distance ratio of saved AL runs.
"""
