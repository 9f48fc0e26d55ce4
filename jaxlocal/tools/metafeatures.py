"""Every block's inter/intra class distance ratio (thesis §3.3) for saved Associated Learning /
BP runs, from their last checkpoint: the ``metafeatures.json`` a finished run writes, also for
runs stopped before their last epoch.

  python -m jaxlocal.tools.metafeatures --workdirs=runs/al_cnn,runs/al_cnn_bp
"""

from __future__ import annotations

from absl import app, flags

from jaxlocal import data as data_lib
from jaxlocal.tools.runs import restored_run
from jaxlocal.train import write_evaluation

FLAGS = flags.FLAGS


def write_metafeatures(workdir: str) -> None:
  """Writes ``<workdir>/metafeatures.json`` (and its metrics.jsonl line) for the run's last
  checkpoint, by the run's own 'metafeatures' evaluator."""
  run = restored_run(workdir, 'associated')
  evaluator, = [e for e in run.phase.evaluators if e.name == 'metafeatures']
  steps = data_lib.steps_per_epoch(len(run.dataset.x_train), run.phase.batch_size)
  epoch = int(run.state.step) // steps
  print(f'{workdir}: step {int(run.state.step)} (epoch {epoch})')
  write_evaluation(evaluator, evaluator.fn(run.state, run.dataset), workdir, epoch=epoch,
                   phase=run.phase.name)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS.workdirs:
    raise app.UsageError('--workdirs needs at least one run directory')
  for workdir in FLAGS.workdirs:
    write_metafeatures(workdir)


if __name__ == '__main__':
  # defined here, not on import, so the module can be imported beside jaxlocal.tools.tsne
  flags.DEFINE_list('workdirs', None, 'Runs of configs/al_*.py (AL or BP rows).')
  app.run(main)
