"""Multi-host: two processes on 127.0.0.1 form one mesh through ``jax.distributed.initialize()``
(``--config.mesh.distributed``) and train exactly what one process with the same mesh trains."""

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO
from jaxlocal import experiment
from jaxlocal import train
from test_parallel import tiny_run_config

FLAGS = ['--config.dataset=digits', '--config.num_epochs=1', '--config.batch_size=64',
         '--config.train_examples=256', '--config.num_hidden=32', '--config.num_layers=2',
         '--config.eval_batch_size=120', '--config.progress_bar=False', '--config.optimizer=sgd',
         '--config.momentum=0.9']


def free_loopback_port() -> int:
  try:
    with socket.socket() as s:
      s.bind(('127.0.0.1', 0))
      return s.getsockname()[1]
  except OSError as error:
    pytest.skip(f'cannot bind a loopback port for the coordinator ({error})')


def last_record(path):
  with open(path) as f:
    return [json.loads(line) for line in f][-1]


def test_two_processes_train_like_one(tmp_path):
  """Each process owns one row of a 2 × 2 ``data × stage`` mesh: a two-stage pipeline per host,
  gradients all-reduced across hosts (SGD, see test_parallel's docstring)."""
  mesh = dict(data=2, stage=2, stage_bounds=(2,))
  port = free_loopback_port()
  mesh_flags = [f'--config.mesh.{k}={v if not isinstance(v, tuple) else str(v)}'
                for k, v in mesh.items()]
  env = {**os.environ, 'JAX_NUM_CPU_DEVICES': '2', 'JAX_PLATFORMS': 'cpu'}
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'jaxlocal.main', '--config=configs/mnist.py:mlp', *FLAGS,
       *mesh_flags, '--config.mesh.distributed=True',
       f'--config.mesh.coordinator=127.0.0.1:{port}', '--config.mesh.num_processes=2',
       f'--config.mesh.process_id={i}', f'--workdir={tmp_path / "multi"}'],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]
  try:
    outputs = [p.communicate(timeout=300)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  for i, (p, out) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, f'process {i} failed:\n{out[-3000:]}'
  assert '4 cpu device(s)' in outputs[0]

  single = tiny_run_config(**mesh)
  experiment.train_and_evaluate(single, str(tmp_path / 'single'))
  expected = last_record(tmp_path / 'single' / 'metrics.jsonl')
  for name in ('metrics.jsonl', 'metrics.jsonl.process1'):
    got = last_record(tmp_path / 'multi' / name)
    for key, value in expected.items():
      if isinstance(value, float) and key not in ('images_per_sec', 'epoch_seconds'):
        assert got[key] == pytest.approx(value, abs=1e-5), (name, key)
