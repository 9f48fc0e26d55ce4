"""Shared test fixtures: the optional real-data folder beside the checkout, and four simulated
CPU devices for the multi-device tests (set before anything initialises a JAX backend; every
other test runs on the default device as before)."""

import atexit
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

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
