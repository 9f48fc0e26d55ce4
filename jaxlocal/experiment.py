"""A config's run: check it, load its data, ask its method for the phases, train them.

The one place that resolves ``config.method`` to a method module (:mod:`jaxlocal.methods`), so
the loop below (:mod:`jaxlocal.train`) knows nothing of methods and the methods nothing of
the command line above (:mod:`jaxlocal.main`).
"""

from __future__ import annotations

import os

import jax

from jaxlocal import data as data_lib
from jaxlocal import many_runs, methods, sweeps
from jaxlocal import workdir as workdir_lib
from jaxlocal.config_lib import ConfigError, check_moved_fields
from jaxlocal.parallel.mesh import MeshSpec
from jaxlocal.precision import compute_dtype
from jaxlocal.train import check_positive, fit_phases, per_process


def check_config(config) -> None:
  """Raises ValueError naming the first impossible value among the loop's fields (ConfigError
  for a field that moved into a method's section)."""
  check_moved_fields(config)
  one_phase = {k: config[k] for k in ('num_epochs', 'batch_size') if k in config}
  check_positive(**one_phase, eval_batch_size=config.eval_batch_size)
  if config.train_examples < 0:
    raise ValueError(f'train_examples must be >= 0 (0 = all), got {config.train_examples}')
  if config.image_size < 0:
    raise ValueError(f'image_size must be >= 0 (0 = native), got {config.image_size}')
  compute_dtype(config.compute_dtype)
  MeshSpec.from_config(config)
  method = methods.get_method(config.method)
  method.check_config(config)


def load_data(config) -> data_lib.Dataset:
  """The config's dataset (``dataset``, ``data_dir``, ``train_examples``, ``image_size``,
  ``num_classes``)."""
  return data_lib.load_dataset(config.dataset, data_dir=config.data_dir or None,
                               train_examples=config.train_examples,
                               image_size=config.image_size,
                               num_classes=config.get('num_classes', 0))


def train_and_evaluate(config, workdir: str, *, allow_config_change: bool = False) -> dict:
  """Loads the data, builds the config's method and trains it; returns the last epoch's record.

  The method module named by ``config.method`` gives the run's phases
  (``phases(config, dataset) -> [Phase]``); :func:`jaxlocal.train.fit_phases` trains them.

  Bad config values raise :class:`~jaxlocal.config_lib.ConfigError` before anything is
  written. A workdir that already holds trained epochs of another config is refused
  (:class:`~jaxlocal.workdir.WorkdirConflictError`) unless ``allow_config_change``, which
  records the change in its ``config_history.jsonl``; its ``config.json`` is written only once
  the run is accepted (:mod:`jaxlocal.workdir`).
  """
  try:
    check_config(config)
    group = sweeps.is_group(config)
    if group:
      sweeps.parse_runs(config)
    method = methods.get_method(config.method)
    pending = workdir_lib.check(config, workdir, allow_config_change=allow_config_change,
                                schedule_fields=getattr(method, 'SCHEDULE_FIELDS', ()),
                                config_name=per_process('config.json'))
    dataset = load_data(config)
    phases = method.phases(config, dataset)
  except (ConfigError, data_lib.DatasetFormatError):
    raise
  except ValueError as error:  # a value the method or the data cannot use
    raise ConfigError(str(error)) from error
  os.makedirs(workdir, exist_ok=True)
  print(f'{config.dataset}: {len(dataset.x_train)} train / {len(dataset.x_test)} test images '
        f'{dataset.image_shape}, {dataset.num_classes} classes (from the '
        f'{dataset.classes_from or "data"}), from {dataset.source}; {jax.device_count()} '
        f'{jax.default_backend()} device(s)', flush=True)
  title = (f'{config.dataset} · {config.method}: {config.model}'
           + (f' · {config.loss}' if config.method == 'local_error' else '') + f' — {workdir}')
  if group:
    pending.accept()
    try:
      return many_runs.train_config_group(config, method, dataset, workdir, title)
    except ValueError as error:
      if isinstance(error, ConfigError):
        raise
      raise ConfigError(str(error)) from error
  return fit_phases(phases, dataset, workdir=workdir, seed=config.seed,
                    eval_batch_size=config.eval_batch_size,
                    checkpoints_to_keep=config.checkpoints_to_keep,
                    progress_bar=config.progress_bar, mesh=MeshSpec.from_config(config),
                    title=title, on_accept=pending.accept)
