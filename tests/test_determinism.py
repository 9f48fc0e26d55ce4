"""The deterministic switch (jaxlocal/determinism.py): the XLA flags it sets, and the error when
a GPU backend started without them. Its effect, a bitwise resume, is test_train's
test_resume_is_exact."""

import os
import subprocess
import sys

import jax
import pytest

from conftest import REPO
from jaxlocal import determinism

FLAGS = ' '.join(determinism.DETERMINISTIC_XLA_FLAGS)
OTHER = '--xla_force_host_platform_device_count=8'
OFF = '--xla_gpu_deterministic_ops=false'


@pytest.mark.parametrize('before, after', [
    ('', FLAGS),
    (OTHER, f'{OTHER} {FLAGS}'),
    (FLAGS, FLAGS),
    (f'{FLAGS} {OFF}', f'{FLAGS} {OFF} {FLAGS}'),  # the last occurrence wins
])
def test_set_flags_appends_once_and_keeps_the_others(monkeypatch, before, after):
  monkeypatch.setenv('XLA_FLAGS', before)
  determinism.set_flags()
  determinism.set_flags()
  assert determinism.flags_set()
  assert os.environ['XLA_FLAGS'] == after


def test_a_gpu_backend_started_without_the_flags_is_an_error(monkeypatch):
  jax.devices()  # this process's backend has started; pretend it is a GPU's, without the flags
  monkeypatch.setenv('XLA_FLAGS', OFF)
  monkeypatch.setattr(determinism.jax, 'default_backend', lambda: 'gpu')
  determinism.require(False)  # nothing asked, nothing checked
  with pytest.raises(RuntimeError, match='deterministic=True.*gpu backend started before'):
    determinism.require(True)
  monkeypatch.setattr(determinism.jax, 'default_backend', lambda: 'cpu')
  determinism.require(True)  # a CPU is deterministic anyway


def test_require_sets_the_flags_before_the_backend_starts_and_xla_accepts_them():
  """In a fresh process, as jaxlocal.main calls it first (XLA:CPU must not reject GPU flags)."""
  code = ('import os; from jax._src import xla_bridge; from jaxlocal import determinism; '
          'os.environ.pop("XLA_FLAGS", None); determinism.require(True); '
          'import jax; jax.numpy.zeros(1).block_until_ready(); '
          'assert xla_bridge.backends_are_initialized() and determinism.flags_set(); print("ok")')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0 and result.stdout.strip() == 'ok', result.stderr[-2000:]
