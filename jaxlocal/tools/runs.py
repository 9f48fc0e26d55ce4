"""Finished (or stopped) runs on disk: their saved config, their data and their last states.

Works for every method: the run's phases are rebuilt from its ``config.json`` by the method
(:mod:`jaxlocal.experiment`) and each phase's last checkpoint is restored into them.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import ml_collections

from jaxlocal import data as data_lib
from jaxlocal import experiment, methods
from jaxlocal.config_lib import migrated
from jaxlocal.phases import Phase
from jaxlocal.train import restored_states


class RestoredRun(NamedTuple):
  """A run's ``config``, ``dataset``, ``phases`` (as its method builds them) and ``states``
  (``{phase name: state}``; a single-phase run's one phase is named ``''``)."""

  config: ml_collections.ConfigDict
  dataset: data_lib.Dataset
  phases: list[Phase]
  states: dict[str, Any]

  @property
  def state(self):
    """The last phase's state (the whole network for single-phase methods)."""
    return self.states[self.phase.name]

  @property
  def phase(self) -> Phase:
    """The last phase (its learner, evaluators, …)."""
    return self.phases[-1]


def restored_run(workdir: str, method: str | None = None) -> RestoredRun:
  """The run in ``workdir`` at its last checkpoints; with ``method``, the run must be of that
  method."""
  with open(os.path.join(workdir, 'config.json')) as f:
    config = ml_collections.ConfigDict(migrated(json.load(f)))
  if method is not None and config.method != method:
    raise ValueError(f'{workdir} is a {config.method!r} run; this needs a {method!r} run')
  dataset = experiment.load_data(config)
  phases = methods.get_method(config.method).phases(config, dataset)
  return RestoredRun(config, dataset, phases,
                     restored_states(phases, dataset, workdir, config.seed))
