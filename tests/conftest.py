"""Shared test fixtures: the optional real-data folder beside the checkout, four simulated CPU
devices for the multi-device tests, and the settings that make the suite's verdict the same on
a CPU and a GPU. All are set here, at import, before anything initialises a JAX backend (every
pytest-xdist worker imports this file first), and the environment variables reach the
subprocesses some tests start:

- no GPU memory preallocation: each of the workers would otherwise take 75 % of the GPU and the
  second one fails with RESOURCE_EXHAUSTED;
- float32 matmuls and convolutions at 'highest' precision: NVIDIA GPUs run them as TF32 by
  default (relative error ~1e-4), which the tests that compare against float64/NumPy references
  at atol 1e-5…1e-7 cannot pass. On a CPU float32 is float32 at every precision setting, so no
  test gets weaker there; bfloat16 inputs stay bfloat16 (the setting only refuses TF32);
- the deterministic switch (jaxlocal/determinism.py): bitwise-reproducible GPU kernels, which
  test_resume_is_exact needs; XLA:CPU ignores it.
"""

import atexit
import gc
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
os.environ['JAX_DEFAULT_MATMUL_PRECISION'] = 'highest'

import jax  # noqa: E402  (after the environment it reads)
import pytest  # noqa: E402

from jaxlocal import determinism  # noqa: E402

determinism.set_flags()
jax.config.update('jax_default_matmul_precision', os.environ['JAX_DEFAULT_MATMUL_PRECISION'])

NUM_DEVICES = 4
jax.config.update('jax_num_cpu_devices', NUM_DEVICES)
# Many tests build the same small networks in fresh closures; a persistent cache lets the
# second build of an identical computation skip XLA compilation (the bulk of the suite's time).
_CACHE = tempfile.mkdtemp(prefix='jaxlocal-xla-cache-')
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
jax.config.update('jax_compilation_cache_dir', _CACHE)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def shared_data():
  """The folder of real .npz datasets (../shared/data); skips the test when it is absent."""
  if not (SHARED_DATA / 'mnist.npz').exists():
    pytest.skip(f'real data not found at {SHARED_DATA} (mnist.npz); the digits tests still run')
  return SHARED_DATA


@pytest.fixture
def collect_abandoned_restores():
  """A failed orbax restore abandons coroutines; collect them inside the test, not at exit."""
  yield
  gc.collect()
