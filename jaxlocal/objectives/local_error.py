"""Nøkland & Eidnes (2019), "Training Neural Networks with Local Error Signals": pred, sim, predsim
and their backprop-free (bpf) variants.

The formulas follow the reference code (``anokland/local-loss``), including its details: the
per-channel spatial std (unbiased) that reduces conv maps before the similarity matrix, the
per-example centring, the ``1e-8`` added to the norm and the clamp to [-1, 1].
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxlocal.models.feedback import FADense
from jaxlocal.models.heads import PredHead, SimProjection, pool_for_pred
from jaxlocal.models.layers import uniform_fan_in
from jaxlocal.objectives.base import LocalObjective, accuracy, batch_mean, cross_entropy
from jaxlocal.ordering import after
from jaxlocal.precision import apply_module

LOSSES = ('pred', 'sim', 'predsim')
LABEL_PROJECTION = 'label_projection'   # a fixed random matrix: no gradient, no weight decay


def similarity_matrix(x: jax.Array) -> jax.Array:
  """S(x) (B, B): cosine similarity between per-example centred feature vectors.

  x is (B, H, W, C) or (B, ...). A conv map with C > 3 and H > 1 is first reduced to its
  per-channel std over space, Z (B, C); anything else is flattened to Z (B, D). Then
  Ẑ_b = (Z_b − mean(Z_b)) / (1e-8 + ‖Z_b − mean(Z_b)‖₂) and S = clip(Ẑ Ẑᵀ, −1, 1).
  """
  if x.ndim == 4 and x.shape[-1] > 3 and x.shape[1] > 1:
    z = spatial_std(x)
  else:
    z = x.reshape(x.shape[0], -1)
  z = z - jnp.mean(z, axis=1, keepdims=True)
  z = z / (1e-8 + jnp.linalg.norm(z, axis=1, keepdims=True))
  return jnp.clip(z @ z.T, -1.0, 1.0)


@jax.custom_vjp
def spatial_std(x: jax.Array) -> jax.Array:
  """``jnp.std(x, axis=(1, 2), ddof=1)``: (B, H, W, C) -> (B, C), two-pass, summed in float32.

  Its gradient, ∂σ/∂x = (x − μ) / ((n − 1) σ) with n = H·W, is written by hand: JAX's keeps the
  centred map x − μ from the forward pass, a float32 map of x's size beside x, and XLA:CPU made
  the gradient while that map was alive; this one keeps x (the sim projection's output, which
  nothing else needs) and forms the gradient from it once the cotangent exists (VGG8B predsim at
  batch 128: 681 → 633 MiB in float32, 794 → 781 in bfloat16, docs/results.md).
  """
  return _spatial_std_forward(x)[0]


def _spatial_std_forward(x):
  x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  n = x.shape[1] * x.shape[2]
  mean = x32.mean((1, 2), keepdims=True)
  std = jnp.sqrt(jnp.square(x32 - mean).sum((1, 2), keepdims=True) / (n - 1))
  return std[:, 0, 0].astype(x.dtype), (x, mean, std)


def _spatial_std_backward(residuals, g):
  x, mean, std = residuals
  n = x.shape[1] * x.shape[2]
  x, mean, std = after((x, mean, std), g)
  scale = g[:, None, None, :].astype(std.dtype) / ((n - 1) * std)
  return ((x.astype(std.dtype) - mean) * scale).astype(x.dtype),


spatial_std.defvjp(_spatial_std_forward, _spatial_std_backward)


def label_similarity(labels: jax.Array, num_classes: int) -> jax.Array:
  """S(Y) (B, B) of the one-hot labels: 1 within a class, −1/(K−1) across classes."""
  return similarity_matrix(jax.nn.one_hot(labels, num_classes))


def _pairs_mean(squared: jax.Array, batch: dict) -> jax.Array:
  """Mean of a (B, B) matrix over the pairs of real (unmasked) examples."""
  mask = batch.get('mask')
  if mask is None:
    return jnp.mean(squared)
  pairs = mask[:, None] * mask[None, :]
  return jnp.sum(squared * pairs) / jnp.maximum(jnp.sum(pairs), 1.0)


def sim_loss(projected: jax.Array, batch: dict, num_classes: int) -> jax.Array:
  """L_sim = mean_ij (S(T(h))_ij − S(Y)_ij)², over the pairs of real (unmasked) examples.

  ``projected`` is T(h), the output of the block's :class:`SimProjection`.
  """
  target = jax.lax.stop_gradient(label_similarity(batch['label'], num_classes))
  return _pairs_mean(jnp.square(similarity_matrix(projected) - target), batch)


def bpf_sim_loss(pooled: jax.Array, label_codes: jax.Array, batch: dict) -> jax.Array:
  """Backprop-free sim: mean_ij (S(pool(h))_ij − S(Y P)_ij)², no trainable map before S.

  ``pooled`` is the pred head's average-pooled h; ``label_codes`` (B, T) are the one-hot labels
  through the fixed random projection P (K, T), so the target is 1 within a class and the
  random correlation of two class codes across classes.
  """
  target = jax.lax.stop_gradient(similarity_matrix(label_codes))
  return _pairs_mean(jnp.square(similarity_matrix(pooled) - target), batch)


def bpf_pred_loss(logits: jax.Array, label_codes: jax.Array, batch: dict) -> jax.Array:
  """Backprop-free pred: binary cross-entropy of the T logits against the class code's bits
  1[Y P > 0], averaged over the T bits and the batch (PyTorch's ``BCEWithLogitsLoss``)."""
  bits = jax.lax.stop_gradient((label_codes > 0).astype(logits.dtype))
  return batch_mean(jnp.mean(optax.sigmoid_binary_cross_entropy(logits, bits), axis=-1), batch)


def code_accuracy(logits: jax.Array, projection: jax.Array, batch: dict) -> jax.Array:
  """Accuracy of the bpf pred head: the class whose ±1 code (sign of its row of P) best agrees
  with the T logits."""
  return accuracy(logits @ jnp.sign(projection).T, batch)


def predsim_loss(pred: jax.Array, sim: jax.Array, beta: float) -> jax.Array:
  """L_predsim = (1 − β)·L_pred + β·L_sim."""
  return (1.0 - beta) * pred + beta * sim


class LocalErrorHeads(nn.Module):
  """The auxiliary part of a block: the pred head and/or the sim projection its loss needs.

  Returns ``(logits, sim_input)``. Backprop-free (``bpf``): the pred head is a
  feedback-alignment linear layer to ``target_size`` outputs on the pooled h, the sim loss reads
  the pooled h directly, and the parameters hold the fixed random label projection P (K, T)
  as ``label_projection``, uniform in ±1/√K like the reference's ``proj_y`` (the loss reads it
  from the parameters, in float32 whatever the heads compute in).
  """

  num_classes: int
  loss: str
  max_features: int = 4096
  bpf: bool = False
  target_size: int = 128

  @nn.compact
  def __call__(self, h):
    wants_pred = self.loss in ('pred', 'predsim')
    wants_sim = self.loss in ('sim', 'predsim')
    if not self.bpf:  # the sim projection's convolution reads h: stored, pooled in one piece
      logits = PredHead(self.num_classes, self.max_features, pairs_first=not wants_sim,
                        name='pred')(h) if wants_pred else None
      return logits, SimProjection(name='sim')(h) if wants_sim else None
    pooled = pool_for_pred(h, self.max_features)
    logits = FADense(self.target_size, zero_init=True, name='pred')(
        pooled.reshape(h.shape[0], -1)) if wants_pred else None
    self.param(LABEL_PROJECTION, uniform_fan_in(self.num_classes),
               (self.num_classes, self.target_size))
    return logits, pooled if wants_sim else None


def local_error(num_classes: int, loss: str = 'predsim', *, beta: float = 0.99,
                max_features: int = 4096, bpf: bool = False,
                target_size: int = 128) -> LocalObjective:
  """The block objective ``loss`` ∈ {'pred', 'sim', 'predsim'} with its heads as aux params.

  ``max_features`` is the reference's ``--dim-in-decoder``: the pred head's input size limit.
  ``bpf`` selects the backprop-free variant (the reference's ``--bio``, the paper's Table 5) with
  ``target_size`` the length of the random label codes (``--target-proj-size``).
  Metrics: ``pred_loss`` and ``accuracy`` (pred head), ``sim_loss`` (sim part).
  The heads compute in the block's ``compute_dtype`` (:func:`jaxlocal.precision.apply_module`),
  the similarity matrices and losses in float32.
  """
  if loss not in LOSSES:
    raise ValueError(f'unknown local loss {loss!r}; choose one of {LOSSES}')
  if isinstance(beta, (int, float)) and not 0.0 <= beta <= 1.0:  # a tracer: a swept β
    raise ValueError(f'beta must lie in [0, 1], got {beta}')
  if target_size < 1:
    raise ValueError(f'the label code length target_size must be >= 1, got {target_size}')
  heads = LocalErrorHeads(num_classes, loss, max_features, bpf, target_size)

  def loss_fn(aux_params, h, batch):
    logits, sim_input = apply_module(heads, aux_params, h)
    metrics = {}
    if bpf:
      projection = jax.lax.stop_gradient(aux_params[LABEL_PROJECTION])
      codes = jax.nn.one_hot(batch['label'], num_classes) @ projection
    if logits is not None:
      metrics['pred_loss'] = bpf_pred_loss(logits, codes, batch) if bpf else \
          cross_entropy(logits, batch)
      metrics['accuracy'] = code_accuracy(logits, projection, batch) if bpf else \
          accuracy(logits, batch)
    if sim_input is not None:
      metrics['sim_loss'] = bpf_sim_loss(sim_input, codes, batch) if bpf else \
          sim_loss(sim_input, batch, num_classes)
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
