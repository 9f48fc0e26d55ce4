"""Orbax checkpoints of the training state, one per epoch, with exact resume."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored into this run's state."""


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

  def restore(self, epoch: int, like):
    """Restores the state of ``epoch`` into the structure, shapes and shardings of ``like``."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, {'state': like})
    try:
      return self._manager.restore(epoch, args=ocp.args.StandardRestore(abstract))['state']
    except Exception as error:  # orbax raises several types for unreadable/mismatched trees
      raise CheckpointError(
          f'cannot restore the checkpoint of epoch {epoch} from {self.directory}: {error}\n'
          'It is corrupt or was written by a run with another config (model, loss, dataset). '
          'Use a fresh --workdir, or delete that checkpoint folder to restart from the '
          'previous one.') from error

  def close(self) -> None:
    self._manager.close()
