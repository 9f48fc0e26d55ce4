"""One module per paper; each exposes ``build(config, dataset, steps_per_epoch) -> Learner``."""

from __future__ import annotations

from jaxlocal.methods import local_error

METHODS = {
    'local_error': local_error,
}


def get_method(name: str):
  """The method module registered as ``name``."""
  try:
    return METHODS[name]
  except KeyError:
    raise ValueError(f'unknown method {name!r}; choose one of {sorted(METHODS)}') from None
