"""Which blocks of a learner train on each step.

A :class:`BlockSchedule` decides it: all of them at once (the local-error methods), one after
another (greedy layer-wise training, the SAE's sequential training), in turns (the SAE's wave),
or one drawn at random per step (randomized layer-wise training). Which *learners* train when
is a run's sequence of phases (:mod:`jaxlocal.phases`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

BLOCK_SCHEDULES = ('all', 'sequential', 'wave', 'random')


@dataclasses.dataclass(frozen=True)
class BlockSchedule:
  """Which block learns on optimiser step t (counted from 0 over the whole run).

  - ``'all'``: every block, every step.
  - ``'sequential'`` (greedy layer-wise, GLL): block ⌊t / steps_per_block⌋, the blocks below it
    frozen and only run forward; the last block keeps training after its turn.
  - ``'wave'``: blocks take turns of ``steps_per_block`` steps, cyclically (one epoch each in
    the SAE paper's wave).
  - ``'random'`` (randomized layer-wise, RLL): a block drawn uniformly on every step, from
    ``seed`` and the step.

  In all but ``'all'`` exactly one block changes per step, parameters and optimiser state alike,
  so each block's optimiser counts only its own steps.
  """

  kind: str = 'all'
  steps_per_block: int = 0
  seed: int = 0

  def __post_init__(self):
    if self.kind not in BLOCK_SCHEDULES:
      raise ValueError(f'unknown block schedule {self.kind!r}; choose one of {BLOCK_SCHEDULES}')
    if self.kind in ('sequential', 'wave') and self.steps_per_block < 1:
      raise ValueError(f'the {self.kind!r} schedule needs steps_per_block >= 1, got '
                       f'{self.steps_per_block}')

  @property
  def one_block_per_step(self) -> bool:
    return self.kind != 'all'

  def active_block(self, step: jax.Array, num_blocks: int) -> jax.Array:
    """int32: the block that learns on ``step`` (jit-able, vectorisable over steps). The
    random draw depends on (seed, step) alone, so a resumed run draws the same blocks."""
    if self.kind == 'sequential':
      return jnp.minimum(step // self.steps_per_block, num_blocks - 1).astype(jnp.int32)
    if self.kind == 'wave':
      return ((step // self.steps_per_block) % num_blocks).astype(jnp.int32)
    if self.kind == 'random':
      key = jax.random.fold_in(jax.random.key(self.seed), step)
      return jax.random.randint(key, (), 0, num_blocks, jnp.int32)
    raise ValueError("the 'all' schedule trains every block; it has no single active block")
