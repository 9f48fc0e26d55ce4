"""Validation of raw dataset arrays from any source into the layout ``Dataset`` holds."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from jaxlocal.data.errors import DatasetFormatError

KEYS = ('x_train', 'y_train', 'x_test', 'y_test')
LAYOUT = ('x_train, x_test: uint8 pixels 0..255 of shape (N, H, W, C) or (N, H, W); '
          'y_train, y_test: integer labels 0..num_classes-1 of shape (N,)')


def _fail(origin: str, problem: str) -> DatasetFormatError:
  return DatasetFormatError(f'{origin}: {problem}. Expected layout: {LAYOUT}.')


def _images(x: np.ndarray, key: str, origin: str) -> np.ndarray:
  """uint8 (N, H, W[, C]) -> uint8 (N, H, W, C)."""
  if x.dtype != np.uint8:
    raise _fail(origin, f'{key} has dtype {x.dtype}; convert pixels to uint8 0..255 '
                '(e.g. np.round(x * 255).astype(np.uint8) for floats in [0, 1])')
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise _fail(origin, f'{key} has shape {x.shape}; it must be 4-D (N, H, W, C) or 3-D (N, H, W)')
  return x


def _labels(y: np.ndarray, key: str, origin: str) -> np.ndarray:
  """integer (N,) -> int32 (N,)."""
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise _fail(origin, f'{key} has shape {y.shape} and dtype {y.dtype}; it must be a 1-D '
                'integer array (e.g. y.reshape(-1).astype(np.int32))')
  return y.astype(np.int32)


def check_arrays(arrays: Mapping[str, np.ndarray], origin: str,
                 num_classes: int | None) -> dict[str, np.ndarray]:
  """Validate and normalise the four arrays of ``KEYS``.

  Returns x_* as uint8 (N, H, W, C) and y_* as int32 (N,). ``origin`` names the source in
  error messages; ``num_classes=None`` (unregistered data) checks only that labels are >= 0.
  """
  missing = [k for k in KEYS if k not in arrays]
  if missing:
    raise _fail(origin, f'missing arrays {missing}; expected keys {list(KEYS)}, '
                f'found {sorted(arrays)}')
  out = {}
  for split in ('train', 'test'):
    x = _images(np.asarray(arrays[f'x_{split}']), f'x_{split}', origin)
    y = _labels(np.asarray(arrays[f'y_{split}']), f'y_{split}', origin)
    if len(x) != len(y):
      raise _fail(origin, f'x_{split} has {len(x)} examples but y_{split} has {len(y)}')
    if len(x) == 0:
      raise _fail(origin, f'the {split} split is empty')
    if y.min() < 0 or (num_classes is not None and y.max() >= num_classes):
      bound = '' if num_classes is None else f' and below num_classes={num_classes}'
      raise _fail(origin, f'y_{split} has labels in [{y.min()}, {y.max()}]; they must be >= 0'
                  f'{bound}')
    out[f'x_{split}'], out[f'y_{split}'] = x, y
  if out['x_train'].shape[1:] != out['x_test'].shape[1:]:
    raise _fail(origin, f'train images have shape {out["x_train"].shape[1:]} but test images '
                f'{out["x_test"].shape[1:]}; both splits need the same (H, W, C)')
  return out
