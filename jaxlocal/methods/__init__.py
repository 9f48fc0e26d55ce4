"""One module per paper, each with the same two functions:

- ``check_config(config)``: raises ValueError naming the first impossible value of its fields;
- ``phases(config, dataset) -> [Phase]`` (:mod:`jaxlocal.phases`): what the run trains, in
  order; :func:`jaxlocal.phases.single_phase` for the methods that train one learner.

:mod:`jaxlocal.experiment` resolves ``config.method`` here; nothing below it imports this.
"""

from __future__ import annotations

from jaxlocal.methods import associated, hebbian, local_error, sae, ssl

METHODS = {
    'associated': associated,
    'hebbian': hebbian,
    'local_error': local_error,
    'sae': sae,
    'ssl': ssl,
}


def get_method(name: str):
  """The method module registered as ``name``."""
  try:
    return METHODS[name]
  except KeyError:
    raise ValueError(f'unknown method {name!r}; choose one of {sorted(METHODS)}') from None
