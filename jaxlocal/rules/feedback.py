"""Feedback alignment (Lillicrap et al. 2016) as a rule: the gradient of a linear op with a
random B in place of W for the input's error signal.

For y = op(x, W) (a matmul or a convolution, linear in each argument), ordinary backprop sends
δx = ∂op(x, W)/∂x ᵀ δy, i.e. Wᵀδy for a dense layer. Feedback alignment sends the same
expression with a fixed random matrix B of W's shape in place of W: δx = Bᵀδy. W itself still
gets its true gradient δW = ∂op/∂W ᵀ δy. B receives no gradient (``update_feedback=False``:
fixed random feedback, Nøkland & Eidnes' bpf) or W's gradient (``update_feedback=True``:
Amit's "updated random feedback"; with an optimiser whose update depends only on the gradient
history, B then moves by exactly W's increment).

The layers using it live in :mod:`jaxlocal.models.feedback`; B sits in their parameters as
``feedback``. :func:`with_true_feedback` puts W in B's place (the true gradient), and
:func:`cosine_angle` measures the angle between the two updates.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

FEEDBACK = 'feedback'


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 4))
def feedback_aligned(op: Callable, x: jax.Array, kernel: jax.Array, feedback: jax.Array,
                     update_feedback: bool) -> jax.Array:
  """op(x, kernel), differentiated with ``feedback`` in place of ``kernel`` for δx."""
  del feedback, update_feedback
  return op(x, kernel)


def _forward(op, x, kernel, feedback, update_feedback):
  del update_feedback
  return op(x, kernel), (x, kernel, feedback)


def _backward(op, update_feedback, residuals, dy):
  x, kernel, feedback = residuals
  (d_kernel,) = jax.vjp(lambda k: op(x, k), kernel)[1](dy)
  (dx,) = jax.vjp(lambda x_: op(x_, feedback), x)[1](dy)
  d_feedback = d_kernel if update_feedback else jnp.zeros_like(feedback)
  return dx, d_kernel, d_feedback


feedback_aligned.defvjp(_forward, _backward)


def with_true_feedback(params):
  """``params`` with every ``feedback`` leaf replaced by its sibling ``kernel``: gradients of
  the result are the true (backprop) gradients of the network."""
  if isinstance(params, dict):
    if FEEDBACK in params and 'kernel' in params:
      return {**params, FEEDBACK: params['kernel']}
    return {k: with_true_feedback(v) for k, v in params.items()}
  if isinstance(params, (tuple, list)):
    return type(params)(with_true_feedback(v) for v in params)
  return params


def cosine_angle(a, b) -> jax.Array:
  """The angle in degrees between two pytrees of arrays seen as flat vectors (90 if one is 0)."""
  dot = sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  norm = lambda t: jnp.sqrt(sum(jnp.vdot(x, x) for x in jax.tree.leaves(t)))
  cosine = dot / jnp.maximum(norm(a) * norm(b), 1e-30)
  return jnp.degrees(jnp.arccos(jnp.clip(cosine, -1.0, 1.0)))
