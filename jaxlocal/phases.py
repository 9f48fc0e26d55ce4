"""Which learners train when: a run is a sequence of :class:`Phase`.

A single phase trains one learner; several train one after another, each resumable on its own,
each reading data derived from the previous phase's state: a Hebbian layer and then a head on
its frozen features, an encoder and then a linear probe. Every method module offers
``phases(config, dataset) -> [Phase]``; :func:`single_phase` is that list for the methods that
train one learner on the config's loop fields.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from jaxlocal.data.augment import Augment
from jaxlocal.data.pipeline import BatchOrder, steps_per_epoch
from jaxlocal.data.sources import Dataset

if TYPE_CHECKING:
  from jaxlocal.blocks import Learner


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


def single_phase(config, dataset: Dataset,
                 build: Callable[[Any, Dataset, int], Learner],
                 finish: Callable[[Any, str], None] | None = None) -> list[Phase]:
  """``[Phase]`` of one unnamed phase: ``build(config, dataset, steps_per_epoch)`` trained for
  ``config.num_epochs`` epochs of ``config.batch_size``, with the config's augmentation and
  batch order (``classes_per_batch``), then ``finish(state, workdir)``."""
  steps = steps_per_epoch(len(dataset.x_train), config.batch_size)
  order = BatchOrder(config.classes_per_batch, config.classes_per_batch_until_epoch)
  return [Phase('', build(config, dataset, steps), config.num_epochs, config.batch_size,
                Augment(**config.augment), order=order, finish=finish)]
