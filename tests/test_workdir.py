"""A workdir holds one run: a rejected rerun changes nothing in it, an allowed change is
recorded, and the console says when a run resumed or had nothing left to train."""

import json
import os

import pytest

from jaxlocal import experiment
from jaxlocal import train
from jaxlocal import workdir as workdir_lib
from jaxlocal.checkpoint import CheckpointError
from test_train import tiny_config


def small_config(**overrides):
  return tiny_config(train_examples=256, **overrides)


def snapshot(folder):
  """Every file under ``folder`` with its bytes."""
  files = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        files[os.path.relpath(path, folder)] = f.read()
  return files


def test_changed_fields_ignores_run_fields_and_new_fields():
  stored = {'model': 'vgg8b', 'num_epochs': 20, 'mesh': {'data': 1, 'stage': 1}}
  current = {'model': 'mlp', 'num_epochs': 2, 'mesh': {'data': 4, 'stage': 2}, 'added': 1}
  assert workdir_lib.changed_fields(stored, current) == {
      'model': ('vgg8b', 'mlp'), 'mesh.stage': (1, 2)}
  assert workdir_lib.describe({'model': ('vgg8b', 'mlp')}) == 'model ("vgg8b" -> "mlp")'


def test_rejected_rerun_changes_nothing_and_an_allowed_one_is_recorded(tmp_path, capsys):
  workdir = str(tmp_path)
  experiment.train_and_evaluate(small_config(num_epochs=1), workdir)
  before = snapshot(tmp_path)
  with pytest.raises(workdir_lib.WorkdirConflictError) as error:
    experiment.train_and_evaluate(small_config(num_epochs=2, learning_rate=0.01), workdir)
  assert 'learning_rate (0.002 -> 0.01)' in str(error.value)
  assert 'allow_config_change=True' in str(error.value)
  assert '--' not in str(error.value)  # the Python API is not told about flags
  assert snapshot(tmp_path) == before
  capsys.readouterr()

  experiment.train_and_evaluate(small_config(num_epochs=2, learning_rate=0.01), workdir,
                           allow_config_change=True)
  assert f'resumed from epoch 1 ({tmp_path}/checkpoints/1)' in capsys.readouterr().out
  history = [json.loads(line) for line in (tmp_path / 'config_history.jsonl').open()]
  assert len(history) == 1 and history[0]['after_epoch'] == 1
  assert history[0]['changes'] == {'learning_rate': {'from': 0.002, 'to': 0.01}}
  assert json.loads((tmp_path / 'config.json').read_text())['learning_rate'] == 0.01

  # num_epochs and progress_bar are free; below the epochs reached there is nothing to train
  experiment.train_and_evaluate(small_config(num_epochs=1, learning_rate=0.01, progress_bar=True),
                           workdir)
  out = capsys.readouterr().out
  assert 'had already reached epoch 2 (num_epochs=1): nothing to train' in out
  assert out.strip().splitlines()[-1].startswith(
      'final: epoch 2 (already reached before this run; num_epochs=1)')
  assert len((tmp_path / 'config_history.jsonl').read_text().splitlines()) == 1


def test_a_fresh_workdir_writes_its_config_only_once_accepted(tmp_path):
  with pytest.raises(ValueError, match="unknown loss 'predsimm'"):
    experiment.train_and_evaluate(small_config(loss='predsimm'), str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


@pytest.mark.usefixtures('collect_abandoned_restores')
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')  # orbax's reads
def test_only_a_corrupt_checkpoint_is_advised_away(tmp_path):
  experiment.train_and_evaluate(small_config(num_epochs=2, checkpoints_to_keep=3), str(tmp_path))
  data_files = [os.path.join(root, name)
                for root, _, names in os.walk(tmp_path / 'checkpoints' / '2')
                for name in names if os.sep + 'd' + os.sep in os.path.join(root, name)]
  assert data_files
  for path in data_files:
    with open(path, 'r+b') as f:
      f.truncate(10)
  config_before = (tmp_path / 'config.json').read_bytes()
  with pytest.raises(CheckpointError) as error:
    experiment.train_and_evaluate(small_config(num_epochs=3, checkpoints_to_keep=3), str(tmp_path))
  message = str(error.value)
  assert 'checkpoint of epoch 2' in message and 'is corrupt' in message
  assert f'delete {tmp_path}/checkpoints/2 to resume from epoch 1' in message
  assert '\n' not in message and 'TensorStore' not in message
  assert (tmp_path / 'config.json').read_bytes() == config_before


def test_an_older_layout_hebbian_workdir_resumes_and_restores(tmp_path, capsys):
  """A workdir written before the head owned its num_epochs / batch_size (they were top-level,
  beside Nøkland's unused fields) resumes: its config.json is read through migrated()."""
  from jaxlocal.config_lib import hebbian_config, migrated
  from jaxlocal.tools.runs import restored_run
  config = hebbian_config()
  config.update(dataset='digits', train_examples=200, progress_bar=False)
  config.hebbian.update(hidden=(16,), num_epochs=1, batch_size=50)
  config.head.update(num_epochs=1, batch_size=50, lr_values=(1e-3,), lr_boundaries=())
  experiment.train_and_evaluate(config, str(tmp_path))
  record = json.loads((tmp_path / 'config.json').read_text())
  old = {**record, 'num_epochs': 1, 'batch_size': 50, 'learning_rate': 5e-4, 'loss': 'predsim',
         'beta': 0.99, 'head': {k: v for k, v in record['head'].items()
                                if k not in ('num_epochs', 'batch_size')}}
  assert migrated(old) == record
  (tmp_path / 'config.json').write_text(json.dumps(old))
  assert restored_run(str(tmp_path)).config.head.batch_size == 50

  config.head.num_epochs = 2  # a free field, as the top-level num_epochs was
  capsys.readouterr()
  final = experiment.train_and_evaluate(config, str(tmp_path))
  assert final['epoch'] == 2 and 'from epoch 1' in capsys.readouterr().out
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').open()]
  assert [(r['phase'], r['epoch']) for r in records] == [('hebbian1', 1), ('head', 1), ('head', 2)]
  assert not (tmp_path / 'config_history.jsonl').exists()
  assert json.loads((tmp_path / 'config.json').read_text())['head']['num_epochs'] == 2
