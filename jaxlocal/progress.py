"""Progress within an epoch: a tqdm bar on a terminal, plain lines when stdout is a file.

A VGG8B epoch on a CPU takes minutes; with output going to a log file a bar is invisible, so
there a line like ``epoch 3/20: 25% (3,200/12,800 img, 410 img/s)`` is printed every
``every_percent`` of the epoch instead, at most one per ``min_seconds`` (a two-second epoch
prints none).
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


class LineProgress:
  """The part of tqdm's interface the epoch runners use (``n``, ``update``), printing a line
  each time the count crosses another ``every_percent`` of ``total``, ``min_seconds`` or more
  after the last line (or the start)."""

  def __init__(self, total: int, desc: str, every_percent: float = 5.0,
               min_seconds: float = 5.0, stream=None):
    self.total, self.desc, self.n = total, desc, 0
    self.every = max(1, round(total * every_percent / 100))
    self.min_seconds = min_seconds
    self.stream = stream or sys.stdout
    self._started = self._last = time.perf_counter()
    self._next = self.every

  def update(self, count: int) -> None:
    self.n += count
    now = time.perf_counter()
    if self._next <= self.n < self.total and now - self._last >= self.min_seconds:
      self._last = now
      seconds = now - self._started
      rate = f', {self.n / seconds:,.0f} img/s' if seconds > 0 else ''
      print(f'{self.desc}: {100 * self.n / self.total:.0f}% ({self.n:,}/{self.total:,} img'
            f'{rate})', file=self.stream, flush=True)
      self._next = (self.n // self.every + 1) * self.every

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


def epoch_progress(total: int, desc: str, enabled: bool = True):
  """A tqdm bar when stdout is a terminal, :class:`LineProgress` otherwise; silent when not
  ``enabled`` (a context manager either way)."""
  if enabled and not sys.stdout.isatty():
    return LineProgress(total, desc)
  return tqdm(total=total, desc=desc, unit='img', unit_scale=True,
              disable=None if enabled else True, leave=False)
