"""Self-supervised losses on two views (Tang, Yang & Amit 2022): contrastive hinge and SimCLR.

A batch of B images arrives as 2B views, the anchors A first and the views B second
(:func:`jaxlocal.data.preprocess` with ``views=2``), so a block's output splits into halves
z_A = z[:B], z_B = z[B:]. The embedding head is a bias-free linear map of the flattened
block output (no normalisation, no nonlinearity), one per block in layer-wise training.

Both losses are means over the batch's real anchors (``batch['mask']`` at evaluation); the
reference sums over the batch, which differs by the constant B and so, under Adam, only in
the size of epsilon relative to the gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlocal.objectives.base import LocalObjective
from jaxlocal.precision import apply_module

LOSSES = ('hinge', 'simclr')


def split_views(h: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(2B, ...) -> the anchor views (B, ...) and the second views (B, ...)."""
  if h.shape[0] % 2:
    raise ValueError(f'two-view losses need an even number of rows (A then B views), got '
                     f'{h.shape[0]}; train with augment.views=2')
  half = h.shape[0] // 2
  return h[:half], h[half:]


def _anchor_mask(batch: dict, n: int) -> jax.Array:
  mask = batch.get('mask')
  return jnp.ones((n,), jnp.float32) if mask is None else mask.astype(jnp.float32)


@jax.custom_vjp
def l1_distances(z_a: jax.Array, z_b: jax.Array) -> jax.Array:
  """d[s, s'] = Σ_i |z_a[s, i] − z_b[s', i]|: (B, D), (B', D) -> (B, B').

  Its gradient is :func:`l1_distances_vjp`'s, equal to autodiff's.
  """
  return jnp.sum(jnp.abs(z_a[:, None, :] - z_b[None, :, :]), axis=-1)


# Anchor rows per block of the gradient: each block's tensor of signs (rows, B', D) is kept near
# this many bytes, small enough to stay in cache (4 MiB: 16 rows at B' = 1000, D = 64).
_GRADIENT_BLOCK_BYTES = 4 * 2**20


def l1_distances_vjp(z_a: jax.Array, z_b: jax.Array, g: jax.Array):
  """(∂/∂z_a, ∂/∂z_b) of Σ g[s, s'] d[s, s'] for d = l1_distances(z_a, z_b), g (B, B'):

    ∂/∂z_a[s] = Σ_s' g[s, s'] σ(z_a[s] − z_b[s']),   ∂/∂z_b[s'] = −Σ_s g[s, s'] σ(z_a[s] − z_b[s'])

  with σ(x) = 1 for x ≥ 0 and −1 below (JAX's derivative of |x|, 1 at 0 too). Computed over
  blocks of anchor rows in sequence, each as two batched matrix-vector products of its
  (rows, B', D) tensor of σ. Autodiff keeps the whole (B, B', D) tensor (256 MB at
  B = B' = 1000, D = 64) and reduces it over a middle axis, which XLA:CPU does slowly.
  """
  b, d = z_a.shape
  rows = max(1, min(b, _GRADIENT_BLOCK_BYTES // (z_b.shape[0] * d * g.dtype.itemsize)))
  pad = -b % rows  # zero rows of g add nothing to ∂/∂z_b; their ∂/∂z_a rows are dropped
  blocks_a = jnp.pad(z_a, ((0, pad), (0, 0))).reshape(-1, rows, d)
  blocks_g = jnp.pad(g, ((0, pad), (0, 0))).reshape(-1, rows, g.shape[1])

  def block(args):
    a, g_rows = args
    sign = jnp.where(a[:, None, :] >= z_b[None, :, :], 1.0, -1.0).astype(g.dtype)
    return (jnp.einsum('sr,srd->sd', g_rows, sign), jnp.einsum('sr,srd->rd', g_rows, sign))

  d_a, d_b = jax.lax.map(block, (blocks_a, blocks_g))
  return (d_a.reshape(-1, d)[:b].astype(z_a.dtype), (-jnp.sum(d_b, axis=0)).astype(z_b.dtype))


l1_distances.defvjp(lambda z_a, z_b: (l1_distances(z_a, z_b), (z_a, z_b)),
                    lambda residuals, g: l1_distances_vjp(*residuals, g))


def contrastive_hinge(z_a: jax.Array, z_b: jax.Array, *, m1: float = 1.0, m2: float = 3.0,
                      negatives: int = 0, negative_weight: float = 1.0,
                      grad_block: bool = True, mask: jax.Array | None = None) -> jax.Array:
  """The contrastive hinge loss with L1 distance, per real anchor (scalar).

  With d_ss' = ‖sg(z^A_s) − z^B_s'‖₁ (sg only when ``grad_block``: the error then reaches the
  network through the B views alone),

    L = (1/n) Σ_s ( [d_ss − m1]₊ + w Σ_{s' ∈ N(s)} [m2 − d_ss']₊ )

  where N(s) is every other image of the batch (``negatives=0``, the reference's
  ``ContrastiveHingeNN2``, w = 1) or the next ``negatives`` images in batch order, without
  wrap-around (``HingeNNFewerNegs``: its "5 negatives" are 4 with w = 1/5). ``mask`` (B,)
  drops padding examples as anchors and as negatives.
  """
  n = z_a.shape[0]
  mask = jnp.ones((n,), jnp.float32) if mask is None else mask.astype(jnp.float32)
  if grad_block:
    z_a = jax.lax.stop_gradient(z_a)
  d = l1_distances(z_a, z_b)
  rows, cols = jnp.arange(n)[:, None], jnp.arange(n)[None, :]
  if negatives:
    is_negative = (cols > rows) & (cols <= rows + negatives)
  else:
    is_negative = cols != rows
  pair_mask = is_negative * mask[:, None] * mask[None, :]
  positive = jax.nn.relu(jnp.diagonal(d) - m1) * mask
  negative = negative_weight * jnp.sum(jax.nn.relu(m2 - d) * pair_mask, axis=1)
  return jnp.sum(positive + negative) / jnp.maximum(jnp.sum(mask), 1.0)


def simclr(z_a: jax.Array, z_b: jax.Array, *, temperature: float = 0.1,
           mask: jax.Array | None = None) -> jax.Array:
  """SimCLR's NT-Xent loss, symmetric (scalar).

  With u = z/‖z‖₂ and sim(a, b) = uₐ·u_b / τ, anchor A_s scores the logits
  [sim(A_s, B_·), sim(A_s, A_s'≠s)] against label s; the loss is the batch-mean cross-entropy
  plus the same term with A and B exchanged (the reference's ``SimCLRLoss``). ``mask`` (B,)
  removes padding examples as anchors and as candidates.
  """
  n = z_a.shape[0]
  mask = jnp.ones((n,), jnp.float32) if mask is None else mask.astype(jnp.float32)
  u_a = z_a / jnp.maximum(jnp.linalg.norm(z_a, axis=1, keepdims=True), 1e-12)
  u_b = z_b / jnp.maximum(jnp.linalg.norm(z_b, axis=1, keepdims=True), 1e-12)
  candidate = mask[None, :] > 0
  not_self = ~jnp.eye(n, dtype=bool)

  def one_side(u, v):
    cross = u @ v.T / temperature
    logits = jnp.concatenate([jnp.where(candidate, cross, -jnp.inf),
                              jnp.where(candidate & not_self, u @ u.T / temperature, -jnp.inf)],
                             axis=1)
    xent = jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(cross)
    return jnp.sum(jnp.where(mask > 0, xent, 0.0)) / jnp.maximum(jnp.sum(mask), 1.0)

  return one_side(u_a, u_b) + one_side(u_b, u_a)


def two_view_loss(loss: str, **loss_kwargs):
  """``(z (2B, D), batch) -> (loss, metrics)``: the two-view ``loss`` ('hinge':
  :func:`contrastive_hinge`, 'simclr': :func:`simclr`, with ``loss_kwargs``) on the embeddings
  of the A views (first half) and B views (second half). Metrics: the mean L1 distance of
  positive pairs and of each anchor to the next image (a collapse drives both to 0)."""
  if loss not in LOSSES:
    raise ValueError(f'unknown two-view loss {loss!r}; choose one of {LOSSES}')
  fn = contrastive_hinge if loss == 'hinge' else simclr

  def loss_fn(z, batch):
    z_a, z_b = split_views(z)
    mask = _anchor_mask(batch, z_a.shape[0])
    value = fn(z_a, z_b, mask=mask, **loss_kwargs)
    positive = jnp.sum(jnp.abs(z_a - z_b), axis=1)
    following = jnp.sum(jnp.abs(z_a - jnp.roll(z_b, -1, axis=0)), axis=1)
    next_mask = mask * jnp.roll(mask, -1)
    mean = lambda v, m: jnp.sum(v * m) / jnp.maximum(jnp.sum(m), 1.0)
    return value, {'positive_l1': mean(positive, mask),
                   'negative_l1': mean(following, next_mask)}

  return loss_fn


def two_view_objective(loss: str, head, **loss_kwargs) -> LocalObjective:
  """A block objective: ``head`` embeds the block's (2B, ...) output, computing in the
  block's ``compute_dtype`` (:func:`jaxlocal.precision.apply_module`), then
  :func:`two_view_loss` in float32."""
  loss_fn = two_view_loss(loss, **loss_kwargs)

  def init(rng, h):
    return head.init(rng, h)['params']

  def objective(aux_params, h, batch):
    return loss_fn(apply_module(head, aux_params, h), batch)

  return LocalObjective(objective, init)
