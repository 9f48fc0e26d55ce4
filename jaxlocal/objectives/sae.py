"""The supervised autoencoder objective of Theiler, Oktay & Frey."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlocal.objectives.base import LocalObjective, accuracy, batch_mean, cross_entropy
from jaxlocal.precision import apply_module


def supervised_autoencoder(head, *, reconstruction_weight: float = 1.0,
                           prediction_weight: float = 1.0) -> LocalObjective:
  """L = w_r · MSE(x̂, x) + w_p · CE(logits, y) for a stage that outputs ``(x, h)``
  (:class:`jaxlocal.models.sae.KeepInput`), with ``(x̂, logits) = head(x, h)``
  (:class:`~jaxlocal.models.sae.SAEHead`).

  The reconstruction uses every example (the mean over pixels and channels, then over the
  batch); the cross-entropy only the labelled ones (label ≥ 0). Metrics: ``reconstruction``,
  ``xent``, ``accuracy``. The head computes in the block's ``compute_dtype``
  (:func:`jaxlocal.precision.apply_module`), the losses in float32.
  """

  def init(rng, h):
    x, stage_out = h
    return head.init(rng, x, stage_out)['params']

  def loss(aux_params, h, batch):
    x, stage_out = h
    x_hat, logits = apply_module(head, aux_params, x, stage_out)
    error = jnp.square(x_hat - jax.lax.stop_gradient(x))
    reconstruction = batch_mean(jnp.mean(error.reshape(len(x), -1), axis=1), batch)
    xent = cross_entropy(logits, batch)
    total = reconstruction_weight * reconstruction + prediction_weight * xent
    return total, {'reconstruction': reconstruction, 'xent': xent,
                   'accuracy': accuracy(logits, batch)}

  return LocalObjective(loss, init)
