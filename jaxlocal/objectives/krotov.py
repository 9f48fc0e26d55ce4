"""The supervised top layer of Krotov & Hopfield (2019), Eq. 1 and its loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlocal.objectives.base import LocalObjective, accuracy, batch_mean


def power_error(num_classes: int, m: float) -> LocalObjective:
  """C = Σ_α |c_α − t_α|^m per example (mean over the batch), t = ±1 one-hot.

  ``c`` (B, K) is the head's output tanh(β S h) (see :class:`jaxlocal.models.krotov.PowerHead`).
  """
  if m < 1:
    raise ValueError(f'the loss power m must be >= 1, got {m}')

  def loss(aux_params, c, batch):
    del aux_params
    targets = 2.0 * jax.nn.one_hot(batch['label'], num_classes) - 1.0
    error = batch_mean(jnp.sum(jnp.abs(c - targets) ** m, axis=-1), batch)
    return error, {'power_error': error, 'accuracy': accuracy(c, batch)}

  return LocalObjective(loss)
