"""Block parallel training: the stages of a network on their own devices, all busy at once.

Local learning has no backward locking, so stage k need not wait for the stages above it. Under
the *delayed schedule* micro-batch m enters stage 0 on tick m and stage k on tick m + k: on every
tick each stage trains on what its predecessor produced on the previous tick and hands its own
output forward. Nothing travels backward. After S − 1 warm-up ticks all S stages are busy on
every tick; an epoch ends with S − 1 drain ticks, so the state between epochs is that of a
network whose every stage has seen every micro-batch (evaluation and checkpoints need no
pipeline). The randomness of stage k on micro-batch m is ``fold_in(fold_in(key, m), k)``,
independent of where the stage runs.

Two implementations of the same schedule:

- :func:`delayed_schedule`: every stage on one device, all ticks in one ``lax.scan``; the
  reference the pipeline is tested against;
- :class:`Pipeline`: each stage's step compiled for its own column of the ``data × stage`` mesh
  (data parallel within the stage); the host dispatches the stages of a tick without waiting,
  so the devices run them concurrently, and activations move forward with ``device_put``
  (:func:`~jaxlocal.parallel.mesh.move`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxlocal.parallel.mesh import DATA, STAGE, move, put, stage_mesh
from jaxlocal.parallel.stages import StagedLearner, merge_metrics, zeros_like_shapes


def micro_key(key: jax.Array, microbatch, stage: int) -> jax.Array:
  """The key of stage ``stage`` on micro-batch ``microbatch``."""
  return jax.random.fold_in(jax.random.fold_in(key, microbatch), stage)


def _labels(batch: dict) -> dict:
  """What travels beside the activations: the batch without its images."""
  return {k: v for k, v in batch.items() if k != 'image'}


def _stage_call(staged: StagedLearner, k: int):
  """``(state, sums, x, labels, key, m) -> (state, sums, out)``: stage k on micro-batch m,
  its metrics added to ``sums``."""
  def call(state, sums, x, labels, key, m):
    state, out, metrics = staged.stages[k].step(state, x, {**labels, 'image': x},
                                                micro_key(key, m, k))
    return state, jax.tree.map(jnp.add, sums, metrics), out
  return call


def metric_shapes(staged: StagedLearner, states: Sequence, batch: dict) -> tuple[list, list]:
  """(per-stage metric shapes, per-stage output shapes) for an example ``batch``."""
  metrics, outs = [], []
  x, labels = batch['image'], _labels(batch)
  for k, stage in enumerate(staged.stages):
    _, x, m = jax.eval_shape(stage.step, states[k], x, {**labels, 'image': x},
                                   jax.random.key(0))
    metrics.append(m)
    outs.append(x)
  return metrics, outs


def delayed_schedule(staged: StagedLearner, states: tuple, batches: dict, key: jax.Array):
  """Trains ``states`` (one per stage) on ``batches`` (every leaf with a leading micro-batch
  axis M) under the delayed schedule, all on one device: M + S − 1 ticks.

  Returns ``(states, sums)``: the stage states after the last drain tick and the network's
  train metrics summed over micro-batches (:func:`~jaxlocal.parallel.stages.merge_metrics`).
  """
  num_stages = len(staged.stages)
  num_micro = jax.tree.leaves(batches)[0].shape[0]
  take = lambda m: jax.tree.map(lambda a: a[m], batches)
  metric_shape, out_shape = metric_shapes(staged, states, take(0))
  calls = [_stage_call(staged, k) for k in range(num_stages)]
  labels_shape = jax.eval_shape(lambda b: _labels(b), take(0))
  inbox = [None] + [(zeros_like_shapes(out_shape[k - 1]), zeros_like_shapes(labels_shape))
                    for k in range(1, num_stages)]
  sums = [zeros_like_shapes(m) for m in metric_shape]

  def tick(carry, t):
    states, inbox, sums = carry
    new_states, new_inbox, new_sums = [], [None] * num_stages, []
    for k in range(num_stages):
      m = t - k
      valid = (m >= 0) & (m < num_micro)
      if k == 0:
        batch = take(jnp.clip(t, 0, num_micro - 1))
        x, labels = batch['image'], _labels(batch)
      else:
        x, labels = inbox[k]
      state, total, out = calls[k](states[k], sums[k], x, labels, key, m)
      keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(valid, a, b), new, old)
      new_states.append(keep(state, states[k]))
      new_sums.append(keep(total, sums[k]))
      if k + 1 < num_stages:
        new_inbox[k + 1] = (out, labels)
    return (tuple(new_states), new_inbox, new_sums), None

  (states, _, sums), _ = jax.lax.scan(tick, (tuple(states), inbox, sums),
                                      jnp.arange(num_micro + num_stages - 1))
  return states, merge_metrics(sums)


class Pipeline:
  """The stages of ``staged`` on the columns of ``mesh`` (axes ``data`` × ``stage``; stage k on
  column k, data parallel within it). Stage states are replicated within their column; inputs
  and activations are split along ``data``.

  ``run(states, sums, feed, num_microbatches, key)`` trains one pass of the delayed schedule:
  ``feed(m)`` returns micro-batch m (a dict with ``image``) placed by :meth:`input_sharding`.
  """

  def __init__(self, staged: StagedLearner, mesh: Mesh):
    if mesh.shape[STAGE] != len(staged.stages):
      raise ValueError(f'the mesh has {mesh.shape[STAGE]} stage devices but the network was cut '
                       f'into {len(staged.stages)} stages; make them equal')
    self.staged = staged
    self.meshes = [stage_mesh(mesh, k) for k in range(len(staged.stages))]
    self.replicated = [NamedSharding(m, P()) for m in self.meshes]
    self.split = [NamedSharding(m, P(DATA)) for m in self.meshes]
    self._calls = [
        jax.jit(_stage_call(staged, k), donate_argnums=(0, 1),
                in_shardings=(rep, rep, split, split, rep, rep),
                out_shardings=(rep, rep, split))
        for k, (rep, split) in enumerate(zip(self.replicated, self.split))]
    self._compiled = None

  @property
  def num_stages(self) -> int:
    return len(self.meshes)

  def input_sharding(self) -> NamedSharding:
    """Where ``feed`` must place micro-batches: split along stage 0's data devices."""
    return self.split[0]

  def place(self, states: Sequence) -> tuple:
    """Copies of the stages' states on their own devices (:meth:`run` consumes what it is
    given; the arrays passed here stay valid)."""
    return tuple(move(s, rep) for s, rep in zip(states, self.replicated))

  def zero_sums(self, states: Sequence, batch: dict) -> list:
    """Per-stage metric accumulators, on each stage's devices. The first call also compiles
    every stage for these shapes, so no timed tick includes compilation."""
    shapes, outs = metric_shapes(self.staged, states, batch)
    sums = [put(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), m), rep)
            for m, rep in zip(shapes, self.replicated)]
    if not self._compiled:
      inputs = [batch['image'], *outs[:-1]]
      labels = jax.eval_shape(_labels, batch)
      key = jax.eval_shape(lambda: jax.random.key(0))
      self._compiled = [call.lower(states[k], sums[k], inputs[k], labels, key,
                                   jax.ShapeDtypeStruct((), jnp.int32)).compile()
                        for k, call in enumerate(self._calls)]
    return sums

  def run(self, states: Sequence, sums: Sequence, feed: Callable[[int], dict],
          num_microbatches: int, key: jax.Array):
    """Returns ``(states, sums)`` after micro-batches 0 … num_microbatches − 1 passed every
    stage. Nothing here waits for a device; the caller decides when to synchronise."""
    S = self.num_stages
    states, sums = list(states), list(sums)
    keys = [move(key, rep) for rep in self.replicated]
    inbox = [None] * S
    for t in range(num_microbatches + S - 1):
      if t < num_microbatches:
        batch = feed(t)
        inbox[0] = (batch['image'], _labels(batch))
      outbox = [None] * S
      for k in range(S):
        if inbox[k] is None:  # warm-up (k > t) or drain (t − k ≥ M)
          continue
        x, labels = inbox[k]
        step = self._compiled[k] if self._compiled else self._calls[k]
        states[k], sums[k], out = step(states[k], sums[k], x, labels, keys[k],
                                       jnp.int32(t - k))
        if k + 1 < S:
          outbox[k + 1] = move((out, labels), self.split[k + 1])
      inbox = [None] + outbox[1:]
    return tuple(states), sums

  def metrics(self, sums: Sequence) -> dict:
    """The network's summed train metrics from the per-stage sums (fetched to the host)."""
    return merge_metrics(jax.device_get(list(sums)))
