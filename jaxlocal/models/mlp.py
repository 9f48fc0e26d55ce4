"""Fully connected blocks: the reference's ``LocalLossBlockLinear`` forward part and output layer."""

from __future__ import annotations

import flax.linen as nn

from jaxlocal.models.layers import Dense, batch_norm, nonlinearity


class DenseBlock(nn.Module):
  """Linear → BatchNorm → nonlinearity = h; out = dropout(h).  (B, ...) -> h, out (B, features).

  The input is flattened first, so a DenseBlock can follow a conv block.
  """

  features: int
  nonlin: str = 'relu'
  dropout: float = 0.0
  use_batch_norm: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = Dense(self.features)(x.reshape(x.shape[0], -1))
    if self.use_batch_norm:
      x = batch_norm(train)(x)
    h = nonlinearity(self.nonlin)(x)
    return h, nn.Dropout(self.dropout, deterministic=not train)(h)


class OutputLayer(nn.Module):
  """The classifier on the last hidden block: (B, ...) -> logits (B, K).

  Local modes zero-initialise its weight, as the reference does; global backprop keeps the
  default initialisation.
  """

  num_classes: int
  zero_init: bool = True

  @nn.compact
  def __call__(self, x):
    return Dense(self.num_classes, zero_init=self.zero_init)(x.reshape(x.shape[0], -1))


def mlp_blocks(widths, *, nonlin: str = 'relu', dropout: float = 0.0,
               use_batch_norm: bool = True) -> list[DenseBlock]:
  """The hidden blocks of an MLP with the given widths, e.g. (1024, 1024, 1024)."""
  return [DenseBlock(w, nonlin, dropout, use_batch_norm) for w in widths]
