"""Orbax checkpoints of the training state, one per epoch, with exact resume."""

from __future__ import annotations

import contextlib
import logging
import os

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored into this run's state."""


class CheckpointMismatchError(CheckpointError):
  """A readable checkpoint whose arrays differ from the state this run builds (another model,
  loss or dataset wrote it): every checkpoint of the run differs alike."""


def _key_name(key) -> str:
  for attribute in ('key', 'idx', 'name'):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def array_layout(tree) -> dict[str, tuple]:
  """``{'state.params.0.forward.kernel': (shape, dtype)}`` for every leaf of ``tree`` (a state
  or orbax's metadata tree of one): what a checkpoint must hold to restore into it."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {'.'.join(_key_name(k) for k in path): (tuple(getattr(leaf, 'shape', ())),
                                                  str(getattr(leaf, 'dtype', '')))
          for path, leaf in leaves}


def layout_differences(stored: dict, expected: dict, limit: int = 2) -> list[str]:
  """Up to ``limit`` readable differences between two :func:`array_layout` s, parameters
  first (the optimiser state differs wherever they do)."""
  lines = [f'{name} only in this run' for name in sorted(expected.keys() - stored)]
  lines += [f'{name} only in the checkpoint' for name in sorted(stored.keys() - expected)]
  lines += [f'{name} is {stored[name][0]} there, {expected[name][0]} here'
            for name in sorted(stored.keys() & expected) if stored[name][0] != expected[name][0]]
  lines = sorted((line.removeprefix('state.') for line in lines),
                 key=lambda line: not line.startswith('params'))
  more = [f'{len(lines) - limit} more'] if len(lines) > limit else []
  return lines[:limit] + more


@contextlib.contextmanager
def _quiet_orbax():
  """Silences orbax's warnings (it logs through absl) for a call whose failure we report."""
  logger = logging.getLogger('absl')
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def _root_cause(error: BaseException) -> str:
  """The innermost cause's first line, without orbax's TensorStore dump."""
  while error.__cause__ is not None:
    error = error.__cause__
  return str(error).split('\n')[0].split(' See full TensorStore details')[0][:300]


class Checkpointer:
  """Saves ``{'state': TrainState}`` under ``<directory>/<epoch>``."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_epoch(self) -> int:
    """The last epoch with a complete checkpoint, 0 if none."""
    return self._manager.latest_step() or 0

  def save(self, epoch: int, state) -> None:
    self._manager.save(epoch, args=ocp.args.StandardSave({'state': state}))
    self._manager.wait_until_finished()

  def _stored_layout(self, epoch: int) -> dict | None:
    """The array layout the checkpoint of ``epoch`` declares, None when it cannot be read."""
    try:
      with _quiet_orbax(), ocp.StandardCheckpointer() as reader:
        metadata = reader.metadata(os.path.join(self.directory, str(epoch), 'default'))
      layout = array_layout(getattr(metadata, 'item_metadata', metadata))
    except Exception:  # pylint: disable=broad-except  (unreadable metadata = corrupt)
      return None
    return layout or None  # no arrays declared: the metadata itself is damaged

  def restore(self, epoch: int, like):
    """Restores the state of ``epoch`` into the structure, shapes and shardings of ``like``.

    Raises :class:`CheckpointMismatchError` when the checkpoint holds other arrays than
    ``like`` (checked on its metadata first), :class:`CheckpointError` when it cannot be read.
    """
    stored = self._stored_layout(epoch)
    if stored is not None:
      differences = layout_differences(stored, array_layout({'state': like}))
      if differences:
        raise CheckpointMismatchError(
            f'the checkpoint of epoch {epoch} in {self.directory} holds another network than '
            f'this config builds ({"; ".join(differences)}): another model, loss or dataset '
            'wrote it. Train this config in a new workdir.')
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, {'state': like})
    try:
      return self._manager.restore(epoch, args=ocp.args.StandardRestore(abstract))['state']
    except Exception as error:  # orbax raises several types for unreadable trees
      earlier = [e for e in self._manager.all_steps() if e < epoch]
      fallback = (f'delete {os.path.join(self.directory, str(epoch))} to resume from epoch '
                  f'{max(earlier)}' if earlier else 'train in a new workdir')
      raise CheckpointError(
          f'the checkpoint of epoch {epoch} in {self.directory} is corrupt '
          f'({_root_cause(error)}); {fallback}.') from error

  def close(self) -> None:
    self._manager.close()
