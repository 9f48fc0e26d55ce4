"""Which learners train when: a run is a sequence of phases.

A single phase trains every block at once (the local-error methods). Several phases train
one after another, each resumable on its own, each reading data derived from the previous
phase's state: a Hebbian layer and then a head on its frozen features, or stacked layers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from jaxlocal.blocks import Learner
from jaxlocal.data.augment import Augment
from jaxlocal.data.pipeline import BatchOrder
from jaxlocal.data.sources import Dataset


@dataclasses.dataclass(frozen=True)
class Phase:
  """One stretch of training: a learner, its epochs, and the data it trains on.

  ``data(previous_state, previous_data) -> Dataset`` derives the phase's data from the state
  and the data of the previous phase (e.g. features of the layer it trained, computed once);
  the first phase gets ``(None, dataset)``. None keeps the previous phase's data.
  ``finish(state, workdir)`` runs when the phase is complete (e.g. to draw plots).
  ``order`` decides how each epoch's examples are batched.
  """

  name: str
  learner: Learner
  num_epochs: int
  batch_size: int
  augment: Augment = Augment()
  data: Callable[[Any, Dataset], Dataset] | None = None
  finish: Callable[[Any, str], None] | None = None
  order: BatchOrder = BatchOrder()
