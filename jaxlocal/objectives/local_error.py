"""Nøkland & Eidnes (2019), "Training Neural Networks with Local Error Signals": pred, sim, predsim.

The formulas follow the reference code (``anokland/local-loss``), including its details: the
per-channel spatial std (unbiased) that reduces conv maps before the similarity matrix, the
per-example centring, the ``1e-8`` added to the norm and the clamp to [-1, 1].
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlocal.models.heads import PredHead, SimProjection
from jaxlocal.objectives.base import LocalObjective, accuracy, cross_entropy

LOSSES = ('pred', 'sim', 'predsim')


def similarity_matrix(x: jax.Array) -> jax.Array:
  """S(x) (B, B): cosine similarity between per-example centred feature vectors.

  x is (B, H, W, C) or (B, ...). A conv map with C > 3 and H > 1 is first reduced to its
  per-channel std over space, Z (B, C); anything else is flattened to Z (B, D). Then
  Ẑ_b = (Z_b − mean(Z_b)) / (1e-8 + ‖Z_b − mean(Z_b)‖₂) and S = clip(Ẑ Ẑᵀ, −1, 1).
  """
  if x.ndim == 4 and x.shape[-1] > 3 and x.shape[1] > 1:
    z = jnp.std(x, axis=(1, 2), ddof=1)
  else:
    z = x.reshape(x.shape[0], -1)
  z = z - jnp.mean(z, axis=1, keepdims=True)
  z = z / (1e-8 + jnp.linalg.norm(z, axis=1, keepdims=True))
  return jnp.clip(z @ z.T, -1.0, 1.0)


def label_similarity(labels: jax.Array, num_classes: int) -> jax.Array:
  """S(Y) (B, B) of the one-hot labels: 1 within a class, −1/(K−1) across classes."""
  return similarity_matrix(jax.nn.one_hot(labels, num_classes))


def sim_loss(projected: jax.Array, batch: dict, num_classes: int) -> jax.Array:
  """L_sim = mean_ij (S(T(h))_ij − S(Y)_ij)², over the pairs of real (unmasked) examples.

  ``projected`` is T(h), the output of the block's :class:`SimProjection`.
  """
  target = jax.lax.stop_gradient(label_similarity(batch['label'], num_classes))
  squared = jnp.square(similarity_matrix(projected) - target)
  mask = batch.get('mask')
  if mask is None:
    return jnp.mean(squared)
  pairs = mask[:, None] * mask[None, :]
  return jnp.sum(squared * pairs) / jnp.maximum(jnp.sum(pairs), 1.0)


def predsim_loss(pred: jax.Array, sim: jax.Array, beta: float) -> jax.Array:
  """L_predsim = (1 − β)·L_pred + β·L_sim."""
  return (1.0 - beta) * pred + beta * sim


class LocalErrorHeads(nn.Module):
  """The auxiliary part of a block: the pred head and/or the sim projection it needs."""

  num_classes: int
  loss: str
  max_features: int = 4096

  @nn.compact
  def __call__(self, h):
    logits = PredHead(self.num_classes, self.max_features, name='pred')(h) \
        if self.loss in ('pred', 'predsim') else None
    projected = SimProjection(name='sim')(h) if self.loss in ('sim', 'predsim') else None
    return logits, projected


def local_error(num_classes: int, loss: str = 'predsim', *, beta: float = 0.99,
                max_features: int = 4096) -> LocalObjective:
  """The block objective ``loss`` ∈ {'pred', 'sim', 'predsim'} with its heads as aux params.

  ``max_features`` is the reference's ``--dim-in-decoder``: the pred head's input size limit.
  Metrics: ``pred_loss`` and ``accuracy`` (pred head), ``sim_loss`` (sim projection).
  """
  if loss not in LOSSES:
    raise ValueError(f'unknown local loss {loss!r}; choose one of {LOSSES}')
  if not 0.0 <= beta <= 1.0:
    raise ValueError(f'beta must lie in [0, 1], got {beta}')
  heads = LocalErrorHeads(num_classes, loss, max_features)

  def loss_fn(aux_params, h, batch):
    logits, projected = heads.apply({'params': aux_params}, h)
    metrics = {}
    if logits is not None:
      metrics['pred_loss'] = cross_entropy(logits, batch)
      metrics['accuracy'] = accuracy(logits, batch)
    if projected is not None:
      metrics['sim_loss'] = sim_loss(projected, batch, num_classes)
    if loss == 'pred':
      total = metrics['pred_loss']
    elif loss == 'sim':
      total = metrics['sim_loss']
    else:
      total = predsim_loss(metrics['pred_loss'], metrics['sim_loss'], beta)
    return total, metrics

  def init(rng, h):
    return heads.init(rng, h)['params']

  return LocalObjective(loss_fn, init)
