"""What each stage of a network costs: the measurement that balances pipelines and that the
per-block throughput benchmark reports."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import jax

from jaxlocal.parallel.stages import StagedLearner, balance


def stage_seconds(staged: StagedLearner, states: Sequence, batch: dict, key: jax.Array, *,
                  repeats: int = 3) -> list[float]:
  """Median seconds of each stage's step (forward, local loss, update) over ``repeats`` calls,
  after compilation and one warm-up call, on its real input: ``batch`` passed through the
  stages before it. Runs on the default device."""
  seconds = []
  x = batch['image']
  for k, stage in enumerate(staged.stages):
    step = jax.jit(stage.step)
    inputs = (states[k], x, {**batch, 'image': x}, jax.random.fold_in(key, k))
    seconds.append(median_seconds(step, *inputs, repeats=repeats)[0])
    x = step(*inputs)[1]
  return seconds


def median_seconds(fn, *args, repeats: int = 5) -> tuple[float, list[float]]:
  """Median wall seconds of ``fn(*args)`` over ``repeats`` calls after one warm-up call (which
  compiles), and every call's seconds; each call waits for the device."""
  if repeats < 1:
    raise ValueError(f'repeats must be >= 1, got {repeats}')
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - started)
  return statistics.median(times), times


def balanced_bounds(learner, state, batch: dict, key: jax.Array, num_stages: int, *,
                    repeats: int = 3) -> tuple[int, ...]:
  """Stage bounds cutting ``learner``'s blocks into ``num_stages`` groups of nearly equal
  measured step time (one stage per block measured, then :func:`~jaxlocal.parallel.stages.balance`)."""
  per_block = learner.staged(range(1, len(learner.block_names)))
  costs = stage_seconds(per_block, per_block.split(state), batch, key, repeats=repeats)
  return balance(costs, num_stages)
