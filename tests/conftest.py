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

and two that only make the suite faster (on 2 CPU cores it went from over 28 min to about 11):

- one persistent XLA compilation cache shared by the workers and the subprocesses;
- on XLA:CPU (no GPU plugin installed), LLVM at -O0: compiling is most of a tiny test's time.
"""

import atexit
import gc
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
os.environ['JAX_DEFAULT_MATMUL_PRECISION'] = 'highest'
# Without a GPU plugin the tests run on XLA:CPU, whose LLVM passes are most of the suite's time
# (tiny shapes: compiling a small VGG's step takes seconds, running it milliseconds). At -O0 XLA
# compiles them about 5x faster; the HLO, and so what is computed and every memory analysis, is
# the same. Not done where a GPU plugin is installed: there the flag would also slow the kernels.
if not any(importlib.util.find_spec(f'jax_cuda{v}_plugin') for v in (12, 13)):
  os.environ['XLA_FLAGS'] = ' '.join(
      [os.environ.get('XLA_FLAGS', ''), '--xla_backend_optimization_level=0']).strip()

import jax  # noqa: E402  (after the environment it reads)
import pytest  # noqa: E402

from jaxlocal import determinism  # noqa: E402

determinism.set_flags()
jax.config.update('jax_default_matmul_precision', os.environ['JAX_DEFAULT_MATMUL_PRECISION'])

NUM_DEVICES = 4
jax.config.update('jax_num_cpu_devices', NUM_DEVICES)
# Many tests build the same small networks in fresh closures, and the CLI tests start Python
# processes that compile the same quick-start run again: one persistent compilation cache for
# the whole session lets every repeat skip XLA compilation (the bulk of the suite's time). It is
# made once, by the first process that imports this file (pytest, or xdist's controller), and
# reaches the xdist workers and the subprocesses through the environment; that process removes it.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix='jaxlocal-xla-cache-')
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.2'
jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
jax.config.update('jax_persistent_cache_min_compile_time_secs',
                  float(os.environ.get('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')))

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
