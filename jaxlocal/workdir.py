"""The workdir's record of its run: ``config.json`` and ``config_history.jsonl``.

A workdir holds one run. Its ``config.json`` says what its checkpoints and metrics are, and it
is written only once a run is *accepted* (its checkpoint, if any, restored), so a rejected run
leaves it untouched. A rerun may change only the fields that neither change the state's
structure nor the meaning of the epochs already trained (:data:`RUN_FIELDS`: how long to train,
where the data is, how to place and report the run). A change to any other field is refused
with :class:`WorkdirConflictError`, unless the caller allows it explicitly
(``allow_config_change``); then the change is appended to ``config_history.jsonl`` with the
epoch it took effect after, so which values the earlier epochs used is never lost.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Iterable

from jaxlocal.config_lib import ConfigError, flatten, migrated

CONFIG = 'config.json'
HISTORY = 'config_history.jsonl'

# Fields a rerun may change freely: how far to train, where the data lives, how the run is
# placed on devices and reported. (mesh.stage and mesh.stage_bounds are not among them: they
# change the training schedule.)
RUN_FIELDS = frozenset({
    'num_epochs', 'head.num_epochs', 'probe.num_epochs', 'data_dir', 'progress_bar', 'eval_batch_size', 'checkpoints_to_keep',
    'deterministic', 'mesh.data', 'mesh.distributed', 'mesh.coordinator',
    'mesh.num_processes', 'mesh.process_id', 'runs.vectorize',
})


class WorkdirConflictError(ConfigError):
  """The workdir holds trained epochs of a run whose config differs in fields that matter.

  ``changes`` maps each such field to ``(stored value, requested value)``.
  """

  def __init__(self, workdir: str, changes: dict, cli: bool = False):
    self.workdir, self.changes = workdir, changes
    allow = '--allow_config_change' if cli else 'allow_config_change=True'
    new = 'a new --workdir' if cli else 'a new workdir'
    super().__init__(
        f'{workdir} already holds trained epochs of a run with another {describe(changes)}. '
        f'Nothing in it was changed. Use {new}, or pass {allow} to continue this run with the '
        f'new values (recorded in {os.path.join(workdir, HISTORY)}).')

  def for_cli(self) -> 'WorkdirConflictError':
    """The same error, phrased with the command line's flags."""
    return WorkdirConflictError(self.workdir, self.changes, cli=True)


def describe(changes: dict) -> str:
  """``'model ('vgg8b' -> 'mlp'), learning_rate (0.0005 -> 0.001)'``, sorted by field."""
  return ', '.join(f'{k} ({json.dumps(a)} -> {json.dumps(b)})' for k, (a, b) in
                   sorted(changes.items()))


def config_record(config) -> dict:
  """The JSON form of an ml_collections config (tuples become lists), as config.json holds it."""
  return json.loads(config.to_json_best_effort())


def changed_fields(stored: dict, current: dict, free: Iterable[str] = RUN_FIELDS) -> dict:
  """``{field: (stored, current)}`` for every field outside ``free`` whose value differs.

  A field the stored record lacks (added to the library after the run started) is not a
  change: its default is what the old run's code did.
  """
  free = set(free)
  old, new = flatten(stored), flatten(current)
  return {k: (old[k], new.get(k)) for k in sorted(old)
          if k not in free and old[k] != new.get(k)}


def has_trained_epochs(workdir: str) -> bool:
  """Whether ``<workdir>/checkpoints`` (or a phase folder in it) holds a saved epoch, or that of
  a run folder ``<workdir>/run-*`` of a group (:mod:`jaxlocal.many_runs`)."""
  if os.path.isdir(workdir) and any(
      name.startswith('run-') and has_trained_epochs(os.path.join(workdir, name))
      for name in os.listdir(workdir)):
    return True
  root = os.path.join(workdir, 'checkpoints')
  for folder, subfolders, _ in os.walk(root):
    if any(re.fullmatch(r'\d+', name) for name in subfolders):
      return True
    if os.path.relpath(folder, root).count(os.sep) >= 1:
      subfolders.clear()  # checkpoints/<phase>/<epoch> is as deep as they go
  return False


@dataclasses.dataclass
class PendingRecord:
  """What a run will write to its workdir once accepted (see :meth:`accept`)."""

  workdir: str
  record: dict
  changes: dict   # refused fields that the caller allowed to change (empty without override)
  path: str
  written: bool = False

  def accept(self, phase: str = '', epoch: int = 0) -> None:
    """Writes config.json (and the history line of an allowed change); once, idempotent.

    ``phase`` and ``epoch`` say where the run resumes: the change applies after that epoch.
    """
    if self.written:
      return
    self.written = True
    if self.changes:
      entry = {'time': time.strftime('%Y-%m-%dT%H:%M:%S'), 'after_epoch': epoch,
               **({'phase': phase} if phase else {}),
               'changes': {k: {'from': a, 'to': b} for k, (a, b) in self.changes.items()}}
      with open(os.path.join(self.workdir, HISTORY), 'a') as f:
        f.write(json.dumps(entry) + '\n')
    with open(self.path, 'w') as f:
      json.dump(self.record, f, indent=2, sort_keys=True)


def check(config, workdir: str, *, allow_config_change: bool = False,
          schedule_fields: Iterable[str] = (), config_name: str = CONFIG) -> PendingRecord:
  """Compares ``config`` with the workdir's record before anything is written.

  Raises :class:`WorkdirConflictError` when the workdir holds trained epochs of a run whose
  config differs outside :data:`RUN_FIELDS` (less ``schedule_fields``, the free fields that a
  method's schedule depends on, e.g. ``num_epochs`` where the learning rate decays over the
  whole run), unless ``allow_config_change``. Returns the record to write on acceptance.
  """
  path = os.path.join(workdir, config_name)
  current = config_record(config)
  changes = {}
  if os.path.exists(path) and has_trained_epochs(workdir):
    try:
      with open(path) as f:
        stored = migrated(json.load(f))  # an older layout's fields in their place now
    except (OSError, json.JSONDecodeError) as error:
      raise ConfigError(f'{path} cannot be read ({error}); the workdir record is damaged. '
                        'Use a new workdir, or restore that file.') from None
    changes = changed_fields(stored, current, RUN_FIELDS - set(schedule_fields))
    if changes and not allow_config_change:
      raise WorkdirConflictError(workdir, changes)
  return PendingRecord(workdir, current, changes, path)
