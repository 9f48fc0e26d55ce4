"""One module per paper: each exposes ``check_config(config)`` and either
``build(config, dataset, steps_per_epoch) -> Learner`` (and optionally ``finish(config, dataset)``,
the run's end-of-training hook) or ``phases(config, dataset) -> [Phase]``."""

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
