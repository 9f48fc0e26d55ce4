"""Load-time image utilities: resizing and per-channel statistics of uint8 image arrays."""

from __future__ import annotations

import jax
import numpy as np

_CHUNK = 4096  # images resized per call, bounding the float32 working memory


def resize_images(x: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize: uint8 (N, H, W, C) -> uint8 (N, size, size, C), rounded and clipped."""
  if x.shape[1:3] == (size, size):
    return x
  out = np.empty((len(x), size, size, x.shape[3]), np.uint8)
  for start in range(0, len(x), _CHUNK):
    chunk = x[start:start + _CHUNK].astype(np.float32)
    resized = jax.image.resize(chunk, (len(chunk), size, size, x.shape[3]), 'bilinear')
    out[start:start + len(chunk)] = np.clip(np.round(np.asarray(resized)), 0, 255)
  return out


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std of uint8 (N, H, W, C) in [0, 1] units: two float32 (C,).

  The std is floored at 1/255 (one grey level) so a constant channel cannot divide by zero.
  """
  axes = (0, 1, 2)
  mean = x.mean(axis=axes, dtype=np.float64)
  sq_mean = np.mean(np.square(x, dtype=np.float64), axis=axes)
  std = np.sqrt(np.maximum(sq_mean - mean**2, 1.0))
  return (mean / 255).astype(np.float32), (std / 255).astype(np.float32)
