"""A network cut into pipeline stages: consecutive blocks that learn from their own input alone.

A :class:`Stage` is a pure step ``(state, x, batch, rng) -> (state, out, metrics)``: it trains
its blocks on input ``x`` (B, ...) with the labels in ``batch`` and returns what the next stage
reads (``out``, computed before the update, no gradient attached). A :class:`StagedLearner` is
the list of stages with the maps between the network's whole state and the stages' states, so
a pipeline can train the stages apart and evaluate and checkpoint the network whole.

:func:`balance` groups blocks into stages of nearly equal measured cost.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Stage(NamedTuple):
  """One stage. ``step(state, x, batch, rng) -> (state, out, metrics)``; ``metrics`` holds the
  stage's ``loss`` when it has one (an explicit rule such as a Hebbian layer's may not)."""

  step: Callable[[Any, Any, dict, jax.Array], tuple[Any, Any, dict]]
  name: str


class StagedLearner(NamedTuple):
  """``stages``, and ``split(state) -> tuple of stage states`` / ``merge(stage states) -> state``
  between the whole network's state and theirs."""

  stages: tuple[Stage, ...]
  split: Callable[[Any], tuple]
  merge: Callable[[Sequence[Any]], Any]


def learner_stage(learner, output: Callable[[Any, Any], Any], name: str) -> Stage:
  """A stage from any :class:`~jaxlocal.blocks.Learner` whose ``train_step`` reads
  ``batch['image']`` (e.g. a Hebbian layer's explicit rule): ``output(state, x)`` is what the
  next stage reads, computed with the state before the update."""
  def step(state, x, batch, rng):
    out = jax.lax.stop_gradient(output(state, x))
    state, metrics = learner.train_step(state, {**batch, 'image': x}, rng)
    return state, out, metrics
  return Stage(step, name)


def stages_of(learner, bounds: Sequence[int]) -> StagedLearner:
  """``learner``'s blocks cut into pipeline stages, each starting at one of ``bounds`` (see
  :func:`check_bounds`): stage k runs ``learner.stage_step(a, b)`` on its blocks a … b-1. Any
  learner whose state keeps per-block tuples ``params``, ``batch_stats`` and ``opt_state`` and
  that has a ``stage_step`` (a :class:`~jaxlocal.blocks.Learner` of local blocks, Associated
  Learning) is split and merged the same way."""
  if learner.stage_step is None:
    raise ValueError('this learner cannot be cut into stages: its blocks do not all learn at '
                     'once from local objectives')
  names = learner.block_names
  edges = check_bounds(bounds, len(names))
  groups = list(zip(edges, edges[1:]))
  fields = ('params', 'batch_stats', 'opt_state')

  def split(state):
    return tuple(state.replace(**{f: getattr(state, f)[a:b] for f in fields})
                 for a, b in groups)

  def merge(states):
    return states[0].replace(**{f: tuple(x for s in states for x in getattr(s, f))
                                for f in fields})

  stages = tuple(Stage(learner.stage_step(a, b), f'{names[a]}..{names[b - 1]}')
                 for a, b in groups)
  return StagedLearner(stages, split, merge)


def chain(*stages: Stage) -> StagedLearner:
  """Stages built apart (e.g. a Hebbian layer's :func:`learner_stage` and a head's block stage)
  as one network whose state is the tuple of the stages' states."""
  return StagedLearner(tuple(stages), split=tuple, merge=tuple)


def merge_metrics(per_stage: Sequence[dict]) -> dict:
  """One metrics dict for the network: block metrics as they are, ``loss`` summed over stages
  that have one,
  ``accuracy`` the last stage's (the network's output)."""
  merged = {}
  for metrics in per_stage:
    merged.update({k: v for k, v in metrics.items() if k not in ('loss', 'accuracy')})
  merged['loss'] = sum(m['loss'] for m in per_stage if 'loss' in m)
  if 'accuracy' in per_stage[-1]:
    merged['accuracy'] = per_stage[-1]['accuracy']
  return merged


def check_bounds(bounds: Sequence[int], num_blocks: int) -> tuple[int, ...]:
  """``bounds`` are the first block of every stage after the first: strictly increasing, in
  [1, num_blocks). Returns ``(0, *bounds, num_blocks)``."""
  bounds = tuple(int(b) for b in bounds)
  edges = (0, *bounds, num_blocks)
  if any(a >= b for a, b in zip(edges, edges[1:])):
    raise ValueError(f'stage bounds {bounds} must increase strictly within [1, {num_blocks}) '
                     f'so that each of the {len(bounds) + 1} stages gets at least one of the '
                     f'{num_blocks} blocks')
  return edges


def balance(costs: Sequence[float], num_stages: int) -> tuple[int, ...]:
  """Stage bounds (as :func:`check_bounds` takes them) cutting ``costs`` (one per block, e.g.
  measured seconds per step) into ``num_stages`` consecutive groups whose largest total is
  as small as possible: the pipeline's tick is as long as its slowest stage."""
  n = len(costs)
  if not 1 <= num_stages <= n:
    raise ValueError(f'cannot cut {n} blocks into {num_stages} stages; use 1 to {n} stages')
  prefix = [0.0]
  for c in costs:
    prefix.append(prefix[-1] + float(c))

  @functools.lru_cache(maxsize=None)
  def best(start: int, stages: int) -> tuple[float, tuple[int, ...]]:
    """(largest stage cost, bounds) for blocks[start:] cut into ``stages`` groups."""
    if stages == 1:
      return prefix[n] - prefix[start], ()
    options = []
    for cut in range(start + 1, n - stages + 2):
      rest, bounds = best(cut, stages - 1)
      options.append((max(prefix[cut] - prefix[start], rest), (cut, *bounds)))
    return min(options)

  return best(0, num_stages)[1]


def zeros_like_shapes(shapes):
  """A pytree of zeros with the shapes and dtypes of ``shapes`` (``ShapeDtypeStruct`` leaves)."""
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
