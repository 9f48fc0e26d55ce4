"""The benchmark scripts run as documented (tiny settings) and write the JSON they promise."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

RUNS = {
    'contrastive_hinge': ['--batch_sizes=6', '--rows=gll_bp', '--repeats=1'],
    'conv_kernel_grad': ['--layers=8x3x4,4x4x8', '--batch_size=2', '--repeats=1'],
    'block_throughput': ['--config=configs/mnist.py:mlp', '--config.num_hidden=64',
                         '--batch_size=16', '--repeats=1'],
    'local_vs_global': ['--config=configs/quickstart.py', '--model=vgg:8,M',
                        '--losses=glob,pred,pred+bpf', '--batch_size=8', '--repeats=1'],
    'local_vs_global --memory_only': ['--config=configs/quickstart.py', '--model=vgg:8,M',
                                      '--losses=glob,pred', '--batch_size=8', '--memory_only'],
    'many_runs': ['--config=configs/quickstart.py', '--model=mlp', '--config.num_hidden=32',
                  '--batch_size=8', '--runs=1,2', '--steps=2', '--repeats=1'],
    'ssl_steps': ['--rows=e2e_bp,gll_bp@1', '--batch_size=4', '--repeats=1'],
    'scaling': ['--config=configs/mnist.py:mlp', '--config.num_hidden=64', '--cpu_devices=2',
                '--devices=1,2',
                '--batch_size=16', '--microbatches=3', '--repeats=1', '--steps=2'],
}


@pytest.mark.parametrize('name', sorted(RUNS))
def test_benchmark_runs_and_writes_json(tmp_path, name):
  script = name.split()[0]
  out = tmp_path / f'{script}.json'
  env = {**os.environ, 'PYTHONPATH': str(REPO)}
  result = subprocess.run([sys.executable, f'benchmarks/{script}.py', *RUNS[name],
                           f'--json={out}'], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert '| ' in result.stdout  # the Markdown table
  rows = json.loads(out.read_text())['rows']
  assert rows and all(v == v for r in rows for v in r.values() if isinstance(v, float))
  if name == 'scaling':
    assert {r['devices'] for r in rows} == {1, 2}
    assert all(r['max_param_diff'] < 1e-5 for r in rows), rows
    assert 'NOT meaningful' in result.stdout
  if name == 'contrastive_hinge':
    assert [r['what'] for r in rows] == ['loss + gradient', 'gll_bp']
    assert all(r['speedup'] > 0 and r['blocked_temp_MiB'] >= 0 for r in rows)
  if name == 'ssl_steps':
    assert [r['row'] for r in rows] == ['e2e_bp', 'gll_bp@1'] and rows[0]['speed_vs_first'] == 1.0
  if name == 'conv_kernel_grad':
    assert [r['layer'] for r in rows] == ['8x3x4', '4x4x8'] and all(r['speedup'] > 0 for r in rows)
  if name == 'local_vs_global':
    assert [r['loss'] for r in rows] == ['glob', 'pred', 'pred+bpf']
    assert rows[0]['time_vs_first'] == 1.0 and all(r['temp_MiB'] >= 0 for r in rows)
  if name == 'local_vs_global --memory_only':
    assert [r['loss'] for r in rows] == ['glob', 'pred'] and 'median_step_s' not in rows[0]
    assert rows[0]['temp_memory_vs_first'] == 1.0 and all(r['temp_MiB'] > 0 for r in rows)


def test_gpu_session_script_names_bad_stages_and_packs_results(tmp_path):
  """The prepared GPU run (benchmarks/gpu_session.sh): every stage in its header has a branch,
  a bad stage is named and skipped, and the results archive is written regardless."""
  script = REPO / 'benchmarks' / 'gpu_session.sh'
  text = script.read_text()
  header = text.split('\nset -uo pipefail')[0]
  listed = {line.split()[1] for line in header.splitlines()
            if line.startswith('#   ') and line.split()[1].islower() and '_' in line.split()[1]
            or line.startswith('#   throughput')}
  branches = {line.strip().split(')')[0] for line in text.splitlines()
              if line.startswith('    ') and ')' in line and line.strip()[0].isalpha()
              and line.strip().split(')')[0].replace('_', '').isalnum()}
  assert listed and listed <= branches, (listed, branches)
  out = tmp_path / 'out'
  env = {**os.environ, 'PYTHON': sys.executable, 'WORK': str(tmp_path / 'work'),
         'PYTHONPATH': str(REPO)}
  result = subprocess.run(['bash', str(script), 'data', str(out), 'no_such_stage:1', 'c10s_frozen'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  log = (out / 'session.log').read_text()
  assert "unknown stage 'no_such_stage'" in log
  assert "stage 'c10s_frozen' needs a time limit in seconds" in log
  assert (out / 'results.tar.gz').exists()
  usage = subprocess.run(['bash', str(script)], capture_output=True, text=True)
  assert usage.returncode == 2 and 'STAGE:SECONDS' in usage.stderr


REFERENCE = REPO.parent / 'shared' / 'anchors' / 'local_loss_train.py'


def run_against_reference(tmp_path, name: str, *flags: str):
  """``benchmarks/<name>.py --reference=REFERENCE *flags``: its stdout and its JSON rows
  (skipped without PyTorch or the reference train.py)."""
  pytest.importorskip('torch', reason='the reference train.py needs PyTorch')
  if not REFERENCE.exists():
    pytest.skip(f'the reference train.py is not at {REFERENCE}')
  out = tmp_path / f'{name}.json'
  env = {**os.environ, 'PYTHONPATH': str(REPO)}
  result = subprocess.run(
      [sys.executable, f'benchmarks/{name}.py', f'--reference={REFERENCE}', *flags,
       f'--json={out}'], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout, json.loads(out.read_text())['rows']


def test_versus_reference_times_both_steps_and_says_the_loaders_were_replaced(tmp_path):
  """benchmarks/versus_reference.py on a tiny MLP: the bpf row (the reference's feedback-
  alignment autograd function, which needs its saved_variables fix) in bf16 against the
  reference's float32 step."""
  stdout, (row,) = run_against_reference(
      tmp_path, 'versus_reference', '--dataset=mnist', '--model=mlp', '--num_layers=1',
      '--num_hidden=16', '--batch_size=4', '--losses=bpf', '--dtypes=bfloat16', '--steps=2',
      '--warmup=1')
  assert 'loaders REPLACED by random batches already on the device' in stdout
  assert row['loss'] == 'bpf' and len(row['reference_step_seconds']) == 2
  assert row['jaxlocal_bfloat16_img_s'] > 0 and row['reference_float32_img_s'] > 0
  assert row['bfloat16_vs_reference'] > 0


def test_reference_memory_runs_the_reference_through_the_shared_loader(tmp_path):
  """benchmarks/reference_memory.py on one tiny bpf step: the reference loaded by the same
  loader as versus_reference.py (benchmarks/reference_script.py), one child process a loss."""
  _, (row,) = run_against_reference(tmp_path, 'reference_memory', '--losses=pred+bpf',
                                    '--batch_size=4', '--steps=1')
  assert row['loss'] == 'pred+bpf' and row['peak_rss_delta_MiB'] > 0


def test_reference_benchmarks_name_what_is_missing_without_a_traceback(tmp_path):
  """No reference script, or (where PyTorch is absent) no PyTorch: one line naming the fix."""
  import importlib.util
  env = {**os.environ, 'PYTHONPATH': str(REPO)}
  run = lambda name, *flags: subprocess.run(
      [sys.executable, f'benchmarks/{name}.py', *flags, f'--json={tmp_path / "out.json"}'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  missing = run('reference_memory', f'--reference={tmp_path / "nowhere.py"}')
  assert missing.returncode != 0 and 'pass --reference=PATH' in missing.stderr
  assert 'Traceback' not in missing.stderr
  if importlib.util.find_spec('torch') is None and REFERENCE.exists():
    for name in ('reference_memory', 'versus_reference'):
      result = run(name, f'--reference={REFERENCE}')
      assert result.returncode != 0 and 'pip install torch' in result.stderr, name
      assert 'Traceback' not in result.stderr, name
