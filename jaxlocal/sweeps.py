"""A config's ``runs`` section as a list of runs: seeds and sweeps over float fields.

``runs.seeds='0,1,2,3'`` asks for one run per seed; ``runs.sweep='beta=0.9,0.99;
learning_rate=5e-4,1e-3'`` for one run per combination of the fields' values (``runs.mode``
'product': every combination; 'zip': the i-th value of every field together). Seeds and sweep
combine as a product, seeds outermost. :mod:`jaxlocal.many_runs` trains the runs together in one
program; :func:`run_config` is each run's own config, as a solo run of it would read.

A swept field must be a float the learner reads as a number (a learning rate, β, a margin): the
runs share one compiled step, so a field that sets a shape or picks a Python branch cannot
differ between them (:mod:`jaxlocal.many_runs` refuses it at trace time, naming it).
"""

from __future__ import annotations

import dataclasses
import itertools

import ml_collections

from jaxlocal.config_lib import ConfigError

MODES = ('product', 'zip')
VECTORIZE = ('auto', 'vmap', 'unroll')
FIELDS = ('seeds', 'sweep', 'mode', 'vectorize')
# The loop's own floats: the runs of one program share their data order and augmentation.
SHARED_SECTIONS = ('augment', 'mesh', 'runs')


@dataclasses.dataclass(frozen=True)
class Run:
  """One run of a group: its seed and its swept fields' values ``((field, value), ...)``."""

  seed: int
  overrides: tuple[tuple[str, float], ...] = ()

  def folder(self, index: int) -> str:
    """``run-<index>-seed<seed>[-<field><value>...]``, e.g. ``run-1-seed0-beta0.9``."""
    return '-'.join([f'run-{index}', f'seed{self.seed}',
                     *(f'{field}{value:g}' for field, value in self.overrides)])


def is_group(config) -> bool:
  """Whether the config asks for several runs in one program (``runs.seeds`` or
  ``runs.sweep`` set)."""
  runs = config.get('runs')
  return bool(runs is not None and (runs.get('seeds') or runs.get('sweep')))


def _check_section(config) -> None:
  unknown = sorted(set(config.runs.keys()) - set(FIELDS))
  if unknown:
    raise ConfigError(f'runs.{unknown[0]} is not a field of runs; its fields are {FIELDS}')
  if config.runs.mode not in MODES:
    raise ConfigError(f'runs.mode must be one of {MODES}, got {config.runs.mode!r}')
  if config.runs.vectorize not in VECTORIZE:
    raise ConfigError(f'runs.vectorize must be one of {VECTORIZE}, got '
                      f'{config.runs.vectorize!r}')


def _number(text: str, what: str) -> float:
  try:
    return float(text)
  except ValueError:
    raise ConfigError(f'{what}: {text.strip()!r} is not a number') from None


def _seeds(config) -> list[int]:
  text = str(config.runs.seeds).strip()
  if not text:
    return [config.seed]
  seeds = []
  for item in text.split(','):
    value = _number(item, 'runs.seeds')
    if value != int(value):
      raise ConfigError(f'runs.seeds: {item.strip()!r} is not an integer')
    seeds.append(int(value))
  repeated = sorted({s for s in seeds if seeds.count(s) > 1})
  if repeated:
    raise ConfigError(f'runs.seeds repeats seed {repeated[0]}: two runs would be the same run')
  return seeds


def _field_value(config, field: str):
  node = config
  for part in field.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise ConfigError(f'runs.sweep: {field!r} is not a config field')
    node = node[part]
  return node


def _sweep(config) -> list[tuple[str, list[float]]]:
  """``[(field, [values])]`` of ``runs.sweep``, each field checked."""
  text = str(config.runs.sweep).strip()
  fields = []
  for part in filter(None, (p.strip() for p in text.split(';'))):
    if '=' not in part:
      raise ConfigError(f'runs.sweep: {part!r} is not <field>=<value>,<value>,...')
    field, values = (s.strip() for s in part.split('=', 1))
    if field == 'seed' or field.split('.')[0] in SHARED_SECTIONS:
      raise ConfigError(f'runs.sweep cannot set {field!r}: '
                        + ('use runs.seeds for seeds' if field == 'seed' else
                           f'the runs of one program share {field.split(".")[0]}'))
    current = _field_value(config, field)
    if isinstance(current, ml_collections.ConfigDict):
      raise ConfigError(f'runs.sweep: {field!r} is a section; name one of its fields')
    if not isinstance(current, float):
      raise ConfigError(f'runs.sweep: {field!r} is not a float field (it is '
                        f'{type(current).__name__} {current!r}); the runs share one compiled '
                        'step, so only float fields read as numbers can differ between them')
    if field in dict(fields):
      raise ConfigError(f'runs.sweep names {field!r} twice')
    numbers = [_number(v, f'runs.sweep {field}') for v in values.split(',')]
    fields.append((field, numbers))
  if config.runs.mode == 'zip' and len({len(v) for _, v in fields}) > 1:
    lengths = ', '.join(f'{f}: {len(v)}' for f, v in fields)
    raise ConfigError(f'runs.mode=zip needs as many values for every swept field ({lengths})')
  return fields


def parse_runs(config) -> list[Run]:
  """The runs of ``config.runs``: seeds (``config.seed`` when unset) × the sweep's
  combinations. Raises ConfigError naming a bad field or value."""
  _check_section(config)
  seeds, fields = _seeds(config), _sweep(config)
  names = [f for f, _ in fields]
  if not fields:
    combos = [()]
  elif config.runs.mode == 'zip':
    combos = list(zip(*(v for _, v in fields)))
  else:
    combos = list(itertools.product(*(v for _, v in fields)))
  return [Run(seed, tuple(zip(names, combo))) for seed in seeds for combo in combos]


def swept_fields(runs: list[Run]) -> tuple[str, ...]:
  """The fields the runs set, in the sweep's order."""
  return tuple(f for f, _ in runs[0].overrides) if runs else ()


def run_config(config, run: Run) -> ml_collections.ConfigDict:
  """The config of ``run`` alone: its seed and values, with ``runs`` back at its defaults."""
  solo = config.copy_and_resolve_references()
  with solo.unlocked():
    solo.seed = run.seed
    solo.runs.seeds, solo.runs.sweep = '', ''
    for field, value in run.overrides:
      _assign(solo, field, value)
  return solo


def traced_config(config, values: dict) -> ml_collections.ConfigDict:
  """``config`` with each field of ``values`` set to its (traced) value, type-checking off, so a
  learner built from it reads the swept values as tracers inside a jitted, vmapped step."""
  traced = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
  for field, value in values.items():
    _assign(traced, field, value)
  return traced


def _assign(config, field: str, value) -> None:
  *path, last = field.split('.')
  node = config
  for part in path:
    node = node[part]
  node[last] = value
