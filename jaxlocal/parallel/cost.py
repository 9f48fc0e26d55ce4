"""What each stage of a network costs: the measurement that balances pipelines and that the
per-block throughput benchmark reports."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxlocal.parallel.stages import StagedLearner, balance, stages_of


def stage_seconds(staged: StagedLearner, states: Sequence, batch: dict, key: jax.Array, *,
                  repeats: int = 3) -> list[float]:
  """Median seconds of each stage's step (forward, local loss, update) over ``repeats`` calls
  (:func:`step_seconds`), on its real input: ``batch`` passed through the stages before it.
  Runs on the default device; ``states`` stay valid."""
  seconds = []
  x = batch['image']
  for k, stage in enumerate(staged.stages):
    step = jax.jit(stage.step, donate_argnums=0)
    inputs = (x, {**batch, 'image': x}, jax.random.fold_in(key, k))
    median, (_, x, _) = step_seconds(step, states[k], *inputs, repeats=repeats)
    seconds.append(median)
  return seconds


def step_seconds(step, state, *args, repeats: int = 5) -> tuple[float, tuple]:
  """Median wall seconds of a train step as the training loop runs it, and the last call's
  outputs: ``step(state, *args) -> (new_state, ...)`` jitted (or compiled) with the state
  donated (``donate_argnums=0``), each call on the state the previous call returned, after one
  warm-up call. Without donation every call also allocates and first touches a fresh copy of
  the parameters and optimiser state (MLP_AL on one CPU core: 270 ms instead of 155 ms).
  ``state`` itself is copied first and stays valid."""
  if repeats < 1:
    raise ValueError(f'repeats must be >= 1, got {repeats}')
  outputs = step(jax.tree.map(jnp.copy, state), *args)
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    outputs = jax.block_until_ready(step(outputs[0], *args))
    times.append(time.perf_counter() - started)
  return statistics.median(times), outputs


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
  per_block = stages_of(learner, range(1, len(learner.block_names)))
  costs = stage_seconds(per_block, per_block.split(state), batch, key, repeats=repeats)
  return balance(costs, num_stages)
