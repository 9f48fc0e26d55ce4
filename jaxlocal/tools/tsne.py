"""t-SNE of one block's representation in several finished Associated Learning / BP runs.

  python -m jaxlocal.tools.tsne --workdirs=runs/al_mlp,runs/al_mlp_bp --block=2 --out=tsne_block2.png

Each workdir's saved config and last checkpoint are restored; the block's output s_ℓ on the first
``--examples`` test images is mapped to 2-D, one panel per run (the thesis' §3.3 figures).
"""

from __future__ import annotations

import os

from absl import app, flags

from jaxlocal import data as data_lib
from jaxlocal.plots import plot_tsne
from jaxlocal.tools.runs import restored_run

FLAGS = flags.FLAGS
flags.DEFINE_list('workdirs', None, 'Finished runs of configs/al_*.py (AL or BP rows).')
flags.DEFINE_integer('block', 1, 'Which block output s_ℓ to map (1-based).')
flags.DEFINE_integer('examples', 2000, 'Test examples to map.')
flags.DEFINE_string('out', 'tsne.png', 'Path of the PNG.')


def tsne_of_runs(workdirs, block: int, examples: int, out: str) -> None:
  panels = []
  for workdir in workdirs:
    run = restored_run(workdir, 'associated')
    config, dataset, state = run.config, run.dataset, run.state
    x = data_lib.preprocess(None, dataset.x_test[:examples], mean=dataset.mean, std=dataset.std)
    outputs = run.phase.learner.features(state, x)
    if not 1 <= block <= len(outputs):
      raise ValueError(f'--block={block}: {workdir} has blocks 1..{len(outputs)}')
    kind = 'BP' if config.associated.backprop else 'AL'
    panels.append((f'{kind} {config.model} block {block} ({os.path.basename(workdir)})',
                   outputs[block - 1], dataset.y_test[:examples]))
  plot_tsne(panels, out)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS.workdirs:
    raise app.UsageError('--workdirs needs at least one run directory')
  tsne_of_runs(FLAGS.workdirs, FLAGS.block, FLAGS.examples, FLAGS.out)
  print(f'wrote {FLAGS.out}')


if __name__ == '__main__':
  app.run(main)
