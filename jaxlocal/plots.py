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


def _block_keys(records: list[dict], split: str, metric: str) -> list[str]:
  """The ``<block>`` names with a ``<split>/<block>/<metric>`` value in some record."""
  prefix, suffix = f'{split}/', f'/{metric}'
  return sorted({k[len(prefix):-len(suffix)] for r in records for k in r
                 if k.startswith(prefix) and k.endswith(suffix) and k.count('/') == 2})


def _curve(ax, epochs, records, key, **style) -> bool:
  """Plots ``key`` per epoch (markers, so one epoch shows); False when no record has it."""
  values = [_or_nan(r.get(key)) for r in records]
  if all(math.isnan(v) for v in values):
    return False
  ax.plot(epochs, values, marker='o', markersize=3, **style)
  return True


def plot_learning_curves(records: list[dict], path: str, title: str = '') -> None:
  """Like with like, train dashed and test solid, per epoch: the network's summed local loss
  and output cross-entropy; every block's local loss; every block's local accuracy and the
  network's. ``title`` names the run (dataset, model, loss, workdir)."""
  plt = _pyplot()
  epochs = [r['epoch'] for r in records]
  fig, (ax_net, ax_blocks, ax_acc) = plt.subplots(1, 3, figsize=(16, 4.5))
  colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
  for split, dash in (('train', '--'), ('test', '-')):
    _curve(ax_net, epochs, records, f'{split}_loss', color='k', ls=dash,
           label=f'{split}: summed local loss')
    _curve(ax_net, epochs, records, f'{split}_xent', color='tab:red', ls=dash,
           label=f'{split}: output cross-entropy')
  ax_net.set_title('network', fontsize=9)
  blocks = _block_keys(records, 'test', 'loss') or _block_keys(records, 'train', 'loss')
  for i, block in enumerate(blocks):
    for split, dash in (('train', '--'), ('test', '-')):
      _curve(ax_blocks, epochs, records, f'{split}/{block}/loss', color=colors[i % len(colors)],
             ls=dash, lw=1, label=f'{block} ({split})' if split == 'test' else None)
  ax_blocks.set_title('local loss per block (train dashed, test solid)', fontsize=9)
  for i, block in enumerate(_block_keys(records, 'test', 'accuracy')):
    _curve(ax_acc, epochs, records, f'test/{block}/accuracy', color=colors[i % len(colors)],
           lw=0.8, alpha=0.8, label=block)
  _curve(ax_acc, epochs, records, 'train_accuracy', color='k', ls='--', lw=1.5,
         label='network (train)')
  _curve(ax_acc, epochs, records, 'test_accuracy', color='k', lw=2, label='network (test)')
  ax_acc.set_title('accuracy (blocks: test)', fontsize=9)
  for ax, ylabel in ((ax_net, 'loss'), (ax_blocks, 'loss'), (ax_acc, 'accuracy')):
    ax.set_xlabel('epoch')
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
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
