"""Krotov & Hopfield's network pieces: rectified-power features and the tanh output layer."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlocal.models.layers import Dense


def rectified_power(x: jax.Array, n: float) -> jax.Array:
  """f(x) = xⁿ for x ≥ 0, 0 otherwise (n = 1 is ReLU)."""
  return jnp.maximum(x, 0.0) ** n


class PowerHead(nn.Module):
  """c = tanh(β · S h) (Eq. 1), or the logits S h when ``tanh`` is False (cross-entropy head).

  h (B, ...) is flattened; S has no bias. β (``temperature``) is not given by the paper; the
  reimplementations use 0.01–0.1 to keep tanh out of saturation for large hⁿ.
  """

  num_classes: int
  temperature: float = 0.01
  tanh: bool = True

  @nn.compact
  def __call__(self, h):
    logits = Dense(self.num_classes, use_bias=False)(h.reshape(h.shape[0], -1))
    return jnp.tanh(self.temperature * logits) if self.tanh else logits


class PowerLayer(nn.Module):
  """The hidden layer of the end-to-end baseline: f(W v) with f the rectified power."""

  features: int
  n: float = 1.0

  @nn.compact
  def __call__(self, x):
    return rectified_power(Dense(self.features)(x.reshape(x.shape[0], -1)), self.n)
