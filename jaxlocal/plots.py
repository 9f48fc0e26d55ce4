"""Figures written as PNGs to the workdir: learning curves, learned weights, rule convergence."""

from __future__ import annotations

import math

import numpy as np


def _pyplot():
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def plot_receptive_fields(W: np.ndarray, image_shape, path: str, num_units: int = 100) -> None:
  """The first ``num_units`` rows of W (K, N) as images (the paper's Fig. 3/5).

  Grayscale units are drawn red for positive and blue for negative weights, each on its own
  symmetric scale; colour units are each rescaled to [0, 1].
  """
  plt = _pyplot()
  units = W[:num_units]
  side = math.ceil(math.sqrt(len(units)))
  fig, axes = plt.subplots(side, side, figsize=(side, side))
  for ax in np.ravel(axes):
    ax.axis('off')
  for ax, w in zip(np.ravel(axes), units):
    image = w.reshape(image_shape)
    if image_shape[-1] == 1:
      limit = np.max(np.abs(image)) or 1.0
      ax.imshow(image[..., 0], cmap='bwr', vmin=-limit, vmax=limit)
    else:
      ax.imshow((image - image.min()) / (np.ptp(image) or 1.0))
  fig.tight_layout(pad=0.1)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_convergence(curve, p: float, path: str) -> None:
  """mean_μ |Σ_i |W_μi|^p − 1| per epoch: the distance of the units from the unit p-sphere."""
  plt = _pyplot()
  epochs, deviation = zip(*curve) if curve else ((), ())
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.semilogy(epochs, deviation, 'k.-')
  ax.set_xlabel('unsupervised epoch')
  ax.set_ylabel(f'mean |Σ|W|^{p:g} − 1|')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _or_nan(value):
  return float('nan') if value is None else value


def plot_learning_curves(records: list[dict], path: str) -> None:
  """Train loss, and test accuracy of the network and of every block's local head, per epoch."""
  plt = _pyplot()
  epochs = [r['epoch'] for r in records]
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
  ax_loss.plot(epochs, [_or_nan(r.get('train_loss')) for r in records], label='train loss')
  ax_loss.set_xlabel('epoch')
  ax_loss.set_ylabel('loss')
  ax_loss.legend()
  heads = sorted({k for r in records for k in r if k.startswith('test/') and
                  k.endswith('/accuracy')})
  for key in heads:
    ax_acc.plot(epochs, [_or_nan(r.get(key)) for r in records], lw=0.8, alpha=0.7,
                label=key[len('test/'):-len('/accuracy')])
  ax_acc.plot(epochs, [_or_nan(r.get('test_accuracy')) for r in records], 'k', lw=2,
              label='network')
  ax_acc.set_xlabel('epoch')
  ax_acc.set_ylabel('test accuracy')
  ax_acc.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_tsne(panels, path: str, seed: int = 0) -> None:
  """Side-by-side 2-D t-SNE maps (scikit-learn) of representations, one colour per class.

  ``panels``: a sequence of ``(title, features (N, ...), labels (N,))``.
  """
  from sklearn.manifold import TSNE

  plt = _pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False)
  for ax, (title, features, labels) in zip(axes[0], panels):
    flat = np.asarray(features, np.float32).reshape(len(features), -1)
    points = TSNE(n_components=2, init='pca', random_state=seed,
                  perplexity=min(30.0, (len(flat) - 1) / 3)).fit_transform(flat)
    ax.scatter(points[:, 0], points[:, 1], c=np.asarray(labels), cmap='tab10', s=4)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
