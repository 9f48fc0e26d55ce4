"""Metric records: JSON lines in the workdir."""

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
