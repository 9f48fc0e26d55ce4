"""The command line as a user meets it: one plain line per error with the right exit status,
a traceback only on request, and what an interrupted run saved."""

import contextlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

QUICK = ['--config=configs/quickstart.py', '--config.train_examples=256', '--config.model=vgg:8,M',
         '--config.num_hidden=32', '--config.dim_in_decoder=128',
         '--config.progress_bar=False']


def run_cli(*args, env=None, timeout=300):
  environment = {k: v for k, v in os.environ.items() if k != 'JAXLOCAL_DEBUG'}
  environment.update(env or {})
  return subprocess.run([sys.executable, '-m', 'jaxlocal.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout, env=environment)


def error_lines(result):
  return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize('flag, status, expected', [
    ('--config.learnin_rate=0.1', 2, 'did you mean --config.learning_rate?'),
    ('--config.model=vgg:32,X,64', 2, "'X' is neither a positive width nor M"),
    ('--config.model=vgg9', 2, "use 'mlp', one of vgg11b, vgg8b"),
    ('--config.loss=predsimm', 2, "unknown loss 'predsimm'"),
])
def test_a_bad_config_is_one_line_and_exit_2(tmp_path, flag, status, expected):
  result = run_cli(*QUICK, flag, f'--workdir={tmp_path / "w"}')
  assert result.returncode == status, result.stderr[-3000:]
  lines = error_lines(result)
  assert len(lines) == 1 and lines[0].startswith('error: ') and expected in lines[0], lines
  assert not (tmp_path / 'w').exists()


def test_debug_switch_shows_the_traceback(tmp_path):
  result = run_cli(*QUICK, '--config.model=vgg9', f'--workdir={tmp_path}',
                   env={'JAXLOCAL_DEBUG': '1'})
  assert result.returncode != 0 and 'Traceback' in result.stderr


def test_missing_data_names_the_variant_beside_it(tmp_path):
  arrays = {k: np.zeros(s, np.uint8) for k, s in (('x_train', (8, 4, 4, 3)), ('y_train', 8),
                                                  ('x_test', (4, 4, 4, 3)), ('y_test', 4))}
  np.savez(tmp_path / 'cifar10-small.npz', **arrays)
  result = run_cli('--config=configs/predsim_vgg8b.py', f'--config.data_dir={tmp_path}',
                   f'--workdir={tmp_path / "w"}')
  assert result.returncode == 2
  lines = error_lines(result)
  assert len(lines) == 1 and '--config.dataset=cifar10-small' in lines[0], lines


@contextlib.contextmanager
def ctrl_c_reaches_children():
  """SIGINT handled (not ignored) in this process while a child starts, as a shell's foreground
  job has it, so the child's Python turns Ctrl-C into KeyboardInterrupt. An ignored signal stays
  ignored across exec, and in the full suite the pytest worker had SIGINT ignored by then
  (SIG_IGN, seen on 2026-12-06; set by something an earlier test loaded): the run never saw
  Ctrl-C and trained on. (Not a ``preexec_fn``: forking a multithreaded JAX process to run
  Python in the child can deadlock.)"""
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)


def test_interrupt_conflict_resume_and_corrupt_checkpoint(tmp_path):
  workdir = f'--workdir={tmp_path}'
  with ctrl_c_reaches_children():
    process = subprocess.Popen(
        [sys.executable, '-u', '-m', 'jaxlocal.main', *QUICK, '--config.num_epochs=100000',
         workdir], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    for line in process.stdout:  # Ctrl-C once an epoch has been saved
      if line.startswith('epoch 1:'):
        break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
  finally:
    process.kill()
  assert process.returncode == 130, stderr[-3000:]
  lines = [line for line in stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and 'Traceback' not in stderr, lines
  assert 'is saved in' in lines[0] and 'Rerun the same command to resume' in lines[0]
  saved = int(lines[0].split(' is saved in')[0].rsplit('epoch ', 1)[1])
  assert saved >= 1

  config_before = (tmp_path / 'config.json').read_bytes()
  result = run_cli(*QUICK, '--config.num_epochs=100000', '--config.learning_rate=0.01', workdir)
  assert result.returncode == 2
  lines = error_lines(result)
  assert len(lines) == 1 and 'learning_rate (0.001 -> 0.01)' in lines[0], lines
  assert '--allow_config_change' in lines[0] and 'a new --workdir' in lines[0]
  assert (tmp_path / 'config.json').read_bytes() == config_before

  result = run_cli(*QUICK, f'--config.num_epochs={saved + 1}', workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'resumed from epoch {saved}' in result.stdout
  assert result.stdout.strip().splitlines()[-1].startswith(f'final: epoch {saved + 1}/')
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').open()]
  assert [r['epoch'] for r in records] == list(range(1, saved + 2))

  last = tmp_path / 'checkpoints' / str(saved + 1)  # truncate its array data
  for root, _, names in os.walk(last):
    for name in names:
      if os.sep + 'd' in root:
        with open(os.path.join(root, name), 'r+b') as f:
          f.truncate(10)
  result = run_cli(*QUICK, f'--config.num_epochs={saved + 3}', workdir)
  assert result.returncode == 1
  lines = error_lines(result)
  assert 1 <= len(lines) <= 2 and 'is corrupt' in lines[0], result.stderr[-3000:]
  assert f'delete {last} to resume from epoch {saved}' in lines[0]


def test_an_unloadable_config_file_is_one_line(tmp_path):
  (tmp_path / 'broken.py').write_text('def get_config(:\n')
  for config, expected in ((tmp_path / 'missing.py', 'No such file'),
                           (tmp_path / 'broken.py', 'line 1: invalid syntax')):
    result = run_cli(f'--config={config}', f'--workdir={tmp_path / "w"}')
    lines = error_lines(result)
    assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], lines
