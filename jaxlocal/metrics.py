"""Metric records: JSON lines in the workdir, and a plot of the learning curves."""

from __future__ import annotations

import json
import math
import os


class JsonlWriter:
  """Appends one JSON object per ``write_scalars`` call to ``path`` (CLU's writer shape)."""

  def __init__(self, path: str):
    self.path = path

  def write_scalars(self, step: int, scalars: dict) -> None:
    record = {'epoch': int(step), **{k: _plain(v) for k, v in scalars.items()}}
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')

  def read(self) -> list[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def truncate(self, keep) -> None:
    """Keeps only the records for which ``keep(record)`` holds (e.g. drops epochs written
    after the last checkpoint of an interrupted run)."""
    kept = [r for r in self.read() if keep(r)]
    with open(self.path, 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in kept)


def _plain(value):
  if value is None or isinstance(value, (int, str)):
    return value
  value = float(value)
  return None if isinstance(value, float) and math.isnan(value) else value


def _or_nan(value):
  return float('nan') if value is None else value


def plot_learning_curves(records: list[dict], path: str) -> None:
  """Train loss, and test accuracy of the network and of every block's local head, per epoch."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

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
