"""Semi-supervised training: a fixed subset of the training examples keeps its labels.

Which examples are labelled is drawn once, at ``init``, from the run's seed and kept in
``TrainState.extras['labelled']`` (bool (N,)), so the checkpoint carries it and a resumed run
keeps the same split. Every train step replaces the label of an unlabelled example by −1, which
the label-based losses skip (:func:`jaxlocal.objectives.base.labelled_mean`): those examples
reach only the label-free losses (e.g. reconstruction).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlocal.blocks import Learner


def labelled_split(rng: jax.Array, labels: np.ndarray, num_labels: int) -> jax.Array:
  """bool (N,): ``num_labels`` examples drawn uniformly without replacement, the same number
  from every class where ``num_labels`` is a multiple of the number of classes (rounded down
  per class otherwise, the remainder drawn from the rest). ``labels``: (N,) on the host."""
  labels = np.asarray(labels)
  n = labels.shape[0]
  if not 0 < num_labels <= n:
    raise ValueError(f'num_labels={num_labels} must be in 1 … {n} (the training examples)')
  num_classes = int(labels.max()) + 1
  labels = jnp.asarray(labels)
  per_class = num_labels // num_classes
  order = jax.random.permutation(rng, n)                     # a random order of the examples
  by_class = order[jnp.argsort(labels[order], stable=True)]  # grouped by class, random within
  first = jnp.searchsorted(labels[by_class], jnp.arange(num_classes))
  rank = jnp.zeros(n, jnp.int32).at[by_class].set(jnp.arange(n) - first[labels[by_class]])
  chosen = rank < per_class                                  # the first per_class of each class
  # the remainder: the first unchosen examples in the random order
  unchosen_before = jnp.zeros(n, jnp.int32).at[order].set(jnp.cumsum(~chosen[order]))
  return chosen | (~chosen & (unchosen_before <= num_labels - jnp.sum(chosen)))


def with_labelled_subset(learner: Learner, labels, num_labels: int) -> Learner:
  """``learner`` trained with the labels of ``num_labels`` of its training examples only.

  ``labels`` (N,) are the training labels (their class balance sets the draw); train batches
  must carry ``index`` (the examples' positions, as the training loop provides).
  """
  labels = np.asarray(labels)
  if not 0 < num_labels <= len(labels):
    raise ValueError(f'num_labels={num_labels} must be in 1 … {len(labels)} (the training '
                     'examples)')

  def init(rng, x):
    split_key, init_key = jax.random.split(rng)
    state = learner.init(init_key, x)
    return state.replace(extras={'labelled': labelled_split(split_key, labels, num_labels)})

  def masked(step):
    def train_step(state, batch, rng):
      known = state.extras['labelled'][batch['index']]
      return step(state, {**batch, 'label': jnp.where(known, batch['label'], -1)}, rng)
    return train_step

  block_steps = (None if learner.block_steps is None
                 else tuple(masked(s) for s in learner.block_steps))
  return learner._replace(init=init, train_step=masked(learner.train_step),
                          block_steps=block_steps)
