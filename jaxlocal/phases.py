"""Which learners train when: a run is a sequence of :class:`Phase`.

A single phase trains one learner; several train one after another, each resumable on its own,
each reading data derived from the previous phase's state: a Hebbian layer and then a head on
its frozen features, an encoder and then a linear probe. Every method module offers
``phases(config, dataset) -> [Phase]``; :func:`single_phase` is that list for the methods that
train one learner on the config's loop fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from jaxlocal.data.augment import Augment
from jaxlocal.data.pipeline import BatchOrder, steps_per_epoch
from jaxlocal.data.sources import Dataset

if TYPE_CHECKING:
  from jaxlocal.blocks import Learner
  from jaxlocal.evaluate import Evaluator


@dataclasses.dataclass(frozen=True)
class Phase:
  """One stretch of training: a learner, its epochs, and the data it trains on.

  ``data(previous_state, previous_data) -> Dataset`` derives the phase's data from the state
  and the data of the previous phase (e.g. features of the layer it trained, computed once);
  the first phase gets ``(None, dataset)``. None keeps the previous phase's data.
  When the phase is complete, every one of ``evaluators``
  (:class:`~jaxlocal.evaluate.Evaluator`) scores its final state on its data and the loop
  writes their records; then ``finish(state, workdir, records)`` runs with the phase's epoch
  records (e.g. to draw plots). ``order`` decides how each epoch's examples are batched.
  """

  name: str
  learner: Learner
  num_epochs: int
  batch_size: int
  augment: Augment = Augment()
  data: Callable[[Any, Dataset], Dataset] | None = None
  finish: Callable[[Any, str, list[dict]], None] | None = None
  order: BatchOrder = BatchOrder()
  evaluators: Sequence[Evaluator] = ()


def single_phase(config, dataset: Dataset,
                 build: Callable[[Any, Dataset, int], Learner],
                 evaluators: Callable[[Learner], Sequence[Evaluator]] | None = None
                 ) -> list[Phase]:
  """``[Phase]`` of one unnamed phase: ``build(config, dataset, steps_per_epoch)`` trained for
  ``config.num_epochs`` epochs of ``config.batch_size``, with the config's augmentation and
  batch order (``classes_per_batch``), then scored by ``evaluators(learner)``."""
  steps = steps_per_epoch(len(dataset.x_train), config.batch_size)
  order = BatchOrder(config.classes_per_batch, config.classes_per_batch_until_epoch)
  learner = build(config, dataset, steps)
  return [Phase('', learner, config.num_epochs, config.batch_size, Augment(**config.augment),
                order=order, evaluators=tuple(evaluators(learner)) if evaluators else ())]
