"""Bitwise-reproducible runs on a GPU: the ``deterministic`` config field.

On a CPU every run here is bitwise reproducible from one process to the next (same machine,
same jax/jaxlib) with no switch. On an NVIDIA GPU two things vary between processes by default:
XLA autotunes convolution and matmul algorithms at compile time (which one wins depends on the
timings of the moment), and some kernels (scatter-adds, some cuDNN/cuBLAS algorithms) sum in an
order set by atomics. ``--xla_gpu_deterministic_ops=true`` turns both off: it implies
``--xla_gpu_exclude_nondeterministic_ops`` (deterministic algorithms only, deterministic
scatters) and compiles without autotuning. Triton GEMM fusions are switched off beside it, so
that every matmul goes to cuBLAS's fixed choice: without autotuning, a fusion that finds no
deterministic Triton config fails to compile. XLA has no deterministic select-and-scatter (the
gradient of ``nn.max_pool``); this library pools by a reshape and a max
(``models.layers.max_pool_2x2``), so none of its steps contain one.

XLA reads ``XLA_FLAGS`` once, when the first backend starts, so the flags must be set before
anything touches a device: :func:`require` is the first thing ``jaxlocal.main`` does.
"""

from __future__ import annotations

import os

import jax
from jax._src import xla_bridge  # backends_are_initialized: no public equivalent

DETERMINISTIC_XLA_FLAGS = ('--xla_gpu_deterministic_ops=true',
                           '--xla_gpu_enable_triton_gemm=false')


def flags_set() -> bool:
  """Whether ``XLA_FLAGS`` holds every flag of :data:`DETERMINISTIC_XLA_FLAGS` (the last
  occurrence of a flag wins, as XLA parses them)."""
  values = {}
  for item in os.environ.get('XLA_FLAGS', '').split():
    name, eq, value = item.partition('=')
    values[name] = value.lower() if eq else 'true'  # a bare boolean flag is on
  return all(values.get(name) == value for name, _, value in
             (flag.partition('=') for flag in DETERMINISTIC_XLA_FLAGS))


def set_flags() -> None:
  """Appends :data:`DETERMINISTIC_XLA_FLAGS` to ``XLA_FLAGS``, keeping the flags already there.
  Takes effect only if no JAX backend has started yet (:func:`require` checks that)."""
  if not flags_set():
    os.environ['XLA_FLAGS'] = ' '.join([os.environ.get('XLA_FLAGS', ''),
                                        *DETERMINISTIC_XLA_FLAGS]).strip()


def require(deterministic: bool) -> None:
  """Makes this process's GPU computations bitwise reproducible when ``deterministic``.

  Before any backend has started: sets the flags (harmless on a CPU, where XLA ignores them).
  After: nothing to do if the flags were set in time or the backend is a CPU's (deterministic
  anyway); on a GPU without them, raises ``RuntimeError`` naming the fix, rather than letting
  the run silently not be what it asked for.
  """
  if not deterministic:
    return
  if not xla_bridge.backends_are_initialized():
    set_flags()
    return
  if flags_set() or jax.default_backend() == 'cpu':
    return
  raise RuntimeError(
      f'deterministic=True, but the {jax.default_backend()} backend started before XLA_FLAGS '
      f'held {" ".join(DETERMINISTIC_XLA_FLAGS)} (XLA reads them once, at start). Call '
      'jaxlocal.determinism.require(True) before anything touches a device, or start the '
      f'process with XLA_FLAGS="{" ".join(DETERMINISTIC_XLA_FLAGS)}".')
