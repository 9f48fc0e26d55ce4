"""Device meshes with a ``data`` and a ``stage`` axis, and where arrays live on them.

A run's devices form a 2-D mesh ``data × stage``: along ``data`` every example batch is split
(data parallel: parameters and optimiser states replicated, XLA all-reduces the gradients), along
``stage`` consecutive groups of blocks live on their own devices (block parallel,
:mod:`jaxlocal.parallel.pipeline`). ``MeshSpec(data=4)`` is plain data parallel,
``MeshSpec(stage=4)`` a four-device pipeline, ``MeshSpec(data=2, stage=4)`` both on eight
devices. Under ``jax.distributed.initialize()`` the mesh spans every process's devices.
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA, STAGE = 'data', 'stage'

log = logging.getLogger('jaxlocal')


@dataclasses.dataclass(frozen=True)
class MeshSpec:
  """How many devices go along each axis: ``data`` (data parallel) × ``stage`` (pipeline).

  ``data=-1`` takes every device not used by the stages. The default (1, 1) is one device.
  ``stage_bounds``: the first block of every stage after the first; empty = balanced by
  measured cost (:func:`jaxlocal.parallel.cost.balanced_bounds`).
  """

  data: int = 1
  stage: int = 1
  stage_bounds: tuple = ()

  def __post_init__(self):
    if self.stage < 1 or (self.data < 1 and self.data != -1):
      raise ValueError(f'mesh.data must be >= 1 (or -1 = all devices) and mesh.stage >= 1; got '
                       f'data={self.data}, stage={self.stage}')
    if self.stage_bounds and len(self.stage_bounds) != self.stage - 1:
      raise ValueError(f'mesh.stage_bounds={tuple(self.stage_bounds)} must name the first block '
                       f'of each of the {self.stage - 1} stages after the first, or be empty')

  @classmethod
  def from_config(cls, config) -> 'MeshSpec':
    return cls(config.mesh.data, config.mesh.stage, tuple(config.mesh.stage_bounds))

  @property
  def trivial(self) -> bool:
    return self.data == 1 and self.stage == 1

  def make(self, devices=None) -> Mesh:
    """The ``(data, stage)`` mesh over ``devices`` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    data = len(devices) // self.stage if self.data == -1 else self.data
    needed = data * self.stage
    if data < 1 or needed > len(devices):
      raise ValueError(
          f'mesh data={self.data} × stage={self.stage} needs {max(needed, self.stage)} devices '
          f'but {len(devices)} exist ({jax.default_backend()}). Lower mesh.data / mesh.stage, '
          'or on CPU simulate devices with XLA_FLAGS=--xla_force_host_platform_device_count=N.')
    if needed < len(devices) and not self.trivial:
      log.warning('the mesh uses %d of the %d devices', needed, len(devices))
    grid = np.array(devices[:needed], dtype=object).reshape(data, self.stage)
    if any(len({d.process_index for d in row}) > 1 for row in grid):
      raise ValueError(f'mesh.stage={self.stage} does not divide the {jax.local_device_count()} '
                       'devices of each process: a pipeline (one row of the mesh) must live '
                       'within one host; the data axis spans hosts')
    return Mesh(grid, (DATA, STAGE))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device of ``mesh`` holds the whole array."""
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """The leading (example) axis split along ``data``, replicated along ``stage``."""
  return NamedSharding(mesh, P(DATA))


def dataset_sharding(mesh: Mesh, num_examples: int) -> NamedSharding:
  """Where an on-device training set lives: its examples split along ``data`` (each device
  holds 1/data of it) when they divide evenly, else replicated."""
  return batch_sharded(mesh) if num_examples % mesh.shape[DATA] == 0 else replicated(mesh)


def stage_mesh(mesh: Mesh, stage: int) -> Mesh:
  """The 1-D ``data`` sub-mesh of the devices that run pipeline stage ``stage``."""
  return Mesh(mesh.devices[:, stage], (DATA,))


def check_divisible(batch_size: int, mesh: Mesh, what: str = 'batch_size') -> None:
  data = mesh.shape[DATA]
  if batch_size % data:
    raise ValueError(f'{what}={batch_size} does not split over mesh.data={data} devices; '
                     f'choose a multiple of {data}')


def put(tree, sharding: NamedSharding):
  """``tree`` placed with ``sharding``. Across processes (multi-host), each leaf's host value
  must be the same on every process, as when every process loads the same data and seed."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda x: _put_global(x, sharding), tree)


def move(tree, sharding: NamedSharding):
  """``tree`` (device arrays) re-placed with ``sharding``: from a stage's devices to the next
  stage's, or between a stage and the whole mesh. Across processes every process must already
  hold the pieces its own devices need, which is the case when each process owns whole rows of
  the ``data × stage`` mesh (:meth:`MeshSpec.make` checks this); then nothing crosses hosts."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding, may_alias=False)
  return jax.tree.map(lambda x: _move_local(x, sharding), tree)


def _move_local(x: jax.Array, sharding: NamedSharding) -> jax.Array:
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.wrap_key_data(_move_local(jax.random.key_data(x), sharding),
                                    impl=jax.random.key_impl(x))
  held = {}
  for shard in x.addressable_shards:
    held.setdefault(_index_key(shard.index, x.shape), shard.data)
  pieces = []
  for device, index in sharding.addressable_devices_indices_map(x.shape).items():
    piece = held.get(_index_key(index, x.shape))
    if piece is None:
      raise ValueError(f'process {jax.process_index()} holds no copy of the slice {index} of a '
                       f'{x.shape} array that its device {device} needs; give each process '
                       'whole rows of the data × stage mesh')
    pieces.append(jax.device_put(piece, device))
  return jax.make_array_from_single_device_arrays(x.shape, sharding, pieces)


def _index_key(index, shape) -> tuple:
  return tuple(s.indices(n) for s, n in zip(index, shape))


def _put_global(x, sharding: NamedSharding):
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return x if x.sharding == sharding else _move_local(x, sharding)
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.wrap_key_data(_put_global(jax.random.key_data(x), sharding),
                                    impl=jax.random.key_impl(x))
  value = np.asarray(x)
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def initialize_distributed(config) -> None:
  """``jax.distributed.initialize()`` when ``mesh.distributed`` is set: cluster values come from
  the environment (Slurm, Open MPI, TPU pods) or from ``mesh.coordinator``,
  ``mesh.num_processes`` and ``mesh.process_id``. Must run before anything touches a device."""
  m = config.mesh
  if not m.distributed:
    return
  kwargs = {}
  if m.coordinator:
    if m.num_processes < 1 or not 0 <= m.process_id < m.num_processes:
      raise ValueError(f'mesh.coordinator={m.coordinator!r} needs mesh.num_processes >= 1 and '
                       f'0 <= mesh.process_id < num_processes; got {m.num_processes}, '
                       f'{m.process_id}')
    kwargs = dict(coordinator_address=m.coordinator, num_processes=m.num_processes,
                  process_id=m.process_id)
  # CPU devices of different processes talk over gloo; GPUs and TPUs ignore this setting.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(**kwargs)
