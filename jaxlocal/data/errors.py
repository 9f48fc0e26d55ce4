"""The two errors a dataset load can raise: data not found, or data in the wrong layout."""

from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
  """No source holds the dataset; the message lists every place looked and how to provide it."""


class DatasetFormatError(ValueError):
  """Dataset arrays in the wrong layout; the message names the file, the problem and the layout."""
