"""The one training loop: epochs, evaluation, checkpoints, metrics and progress.

:func:`fit` trains any :class:`~jaxlocal.blocks.Learner` on a :class:`~jaxlocal.data.Dataset`;
:func:`train_and_evaluate` builds both from a config (the CLI's entry point).

The dataset lives in device memory as uint8; each step gathers its batch by index from the
epoch's permutation and augments it inside the same jitted call, so the loop never moves data
from the host. Randomness is derived from ``(seed, epoch, step)`` alone, which is what makes a
resumed run end with exactly the parameters of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from jaxlocal import data as data_lib
from jaxlocal import methods
from jaxlocal.blocks import Learner
from jaxlocal.checkpoint import Checkpointer
from jaxlocal.metrics import JsonlWriter, plot_learning_curves

log = logging.getLogger('jaxlocal')


class TrainingDivergedError(FloatingPointError):
  """The training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class Augment:
  """Training augmentation, applied on the device (see :func:`jaxlocal.data.preprocess`)."""

  crop_padding: int = 0
  flip: bool = False
  cutout: int = 0

  def __post_init__(self):
    if self.crop_padding < 0 or self.cutout < 0:
      raise ValueError(f'augment.crop_padding and augment.cutout must be >= 0, got {self}')


def _check_positive(**values):
  for name, value in values.items():
    if value <= 0:
      raise ValueError(f'{name} must be positive, got {value}')


def _mean_over(sums: dict, count: float) -> dict:
  return {k: float(v) / count for k, v in jax.device_get(sums).items()}


def make_epoch_runner(learner: Learner, dataset: data_lib.Dataset, batch_size: int,
                      augment: Augment, state, x_train, y_train):
  """Compiles the train step once and returns ``run_epoch``.

  The step is one jitted call that takes batch ``i`` of the epoch's permutation from the
  on-device dataset, augments it, trains, and adds its metrics to running sums.
  ``run_epoch(state, key, bar) -> (state, mean train metrics, seconds)`` raises
  :class:`TrainingDivergedError` when the loss stops being finite.
  """
  steps = data_lib.steps_per_epoch(len(x_train), batch_size)

  def step(state, sums, x_all, y_all, perm, key, i):
    idx = data_lib.batch_indices(perm, i, batch_size)
    aug_key, step_key = jax.random.split(jax.random.fold_in(key, i))
    images = data_lib.preprocess(aug_key, x_all[idx], mean=dataset.mean, std=dataset.std,
                                 **dataclasses.asdict(augment))
    state, metrics = learner.train_step(state, {'image': images, 'label': y_all[idx]}, step_key)
    return state, jax.tree.map(jnp.add, sums, metrics)

  batch = {'image': jax.ShapeDtypeStruct((batch_size, *dataset.image_shape), jnp.float32),
           'label': jax.ShapeDtypeStruct((batch_size,), jnp.int32)}
  sums_shape = jax.eval_shape(learner.train_step, state, batch, jax.random.key(0))[1]
  new_sums = lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shape)
  # Compiled once, ahead of time, so no epoch's images/s includes compilation.
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(
      state, new_sums(), x_train, y_train, jnp.zeros(len(x_train), jnp.int32),
      jax.random.key(0), jnp.int32(0)).compile()
  sync_every = max(1, steps // 20)

  def run_epoch(state, key, bar):
    perm_key, step_key = jax.random.split(key)
    perm = data_lib.epoch_permutation(perm_key, len(x_train))
    sums = new_sums()
    started = time.perf_counter()
    for i in range(steps):
      state, sums = compiled(state, sums, x_train, y_train, perm, step_key, jnp.int32(i))
      if (i + 1) % sync_every == 0 or i + 1 == steps:
        loss = float(sums['loss'])  # waits for the device: the progress bar shows real speed
        if not math.isfinite(loss):
          raise TrainingDivergedError(f'the training loss became {loss} at step {i + 1}/{steps}')
        bar.update((i + 1) * batch_size - bar.n)
    return state, _mean_over(sums, steps), time.perf_counter() - started

  return run_epoch


def make_eval_step(learner: Learner, dataset: data_lib.Dataset):
  """``eval(state, x, y, mask) -> metrics × number of real examples`` (sums over batches)."""

  def evaluate(state, x, y, mask):
    images = data_lib.preprocess(None, x, mean=dataset.mean, std=dataset.std)
    metrics = learner.eval_step(state, {'image': images, 'label': y, 'mask': mask})
    return jax.tree.map(lambda m: m * jnp.sum(mask), metrics)

  return jax.jit(evaluate)


def evaluate(eval_step, state, x, y, batch_size: int) -> dict:
  """Every eval metric as a mean over the whole of (x, y)."""
  sums = None
  for xb, yb, mask in data_lib.eval_batches(x, y, batch_size):
    batch_sums = eval_step(state, xb, yb, mask)
    sums = batch_sums if sums is None else jax.tree.map(jnp.add, sums, batch_sums)
  return _mean_over(sums, len(x))


def fit(learner: Learner, dataset: data_lib.Dataset, *, workdir: str, num_epochs: int,
        batch_size: int, seed: int = 0, augment: Augment = Augment(),
        eval_batch_size: int = 1000, checkpoints_to_keep: int = 2,
        progress_bar: bool = True) -> dict:
  """Trains ``learner`` on ``dataset``, evaluating and checkpointing after every epoch.

  Resumes from the last checkpoint in ``workdir`` if there is one. Writes
  ``metrics.jsonl`` and ``learning_curves.png`` there. Returns the last epoch's record.
  Raises :class:`TrainingDivergedError` on a NaN/inf loss, leaving the last good checkpoint.
  """
  _check_positive(num_epochs=num_epochs, eval_batch_size=eval_batch_size,
                  checkpoints_to_keep=checkpoints_to_keep)
  steps = data_lib.steps_per_epoch(len(dataset.x_train), batch_size)
  os.makedirs(workdir, exist_ok=True)
  init_key, train_key = jax.random.split(jax.random.key(seed))

  x_train, y_train = jax.device_put(dataset.x_train), jax.device_put(dataset.y_train)
  x_test, y_test = jax.device_put(dataset.x_test), jax.device_put(dataset.y_test)
  example = data_lib.preprocess(None, x_train[:2], mean=dataset.mean, std=dataset.std)
  state = jax.jit(learner.init)(init_key, example)

  checkpointer = Checkpointer(workdir, checkpoints_to_keep)
  try:
    writer = JsonlWriter(os.path.join(workdir, 'metrics.jsonl'))
    start = checkpointer.latest_epoch()
    if start:
      state = checkpointer.restore(start, state)
      log.info('resumed from the checkpoint of epoch %d in %s', start, workdir)
    writer.truncate_after(start)
    records = writer.read()
    run_epoch = make_epoch_runner(learner, dataset, batch_size, augment, state, x_train, y_train)
    eval_step = make_eval_step(learner, dataset)

    for epoch in range(start + 1, num_epochs + 1):
      with tqdm(total=steps * batch_size, desc=f'epoch {epoch}/{num_epochs}', unit='img',
                unit_scale=True, disable=None if progress_bar else True, leave=False) as bar:
        try:
          state, train, seconds = run_epoch(state, jax.random.fold_in(train_key, epoch), bar)
        except TrainingDivergedError as error:
          raise TrainingDivergedError(
              f'{error} of epoch {epoch}. Nothing of this epoch was saved; the last good '
              f'checkpoint (epoch {checkpointer.latest_epoch() or "none"}) in {workdir} is '
              'intact. Lower the learning rate or check the data, then rerun.') from None
      test = evaluate(eval_step, state, x_test, y_test, eval_batch_size)
      record = {
          'train_loss': train['loss'],
          'train_accuracy': train.get('accuracy'),
          'test_accuracy': test.get('accuracy'),
          'test_loss': test.get('output/xent', test['loss']),
          'images_per_sec': steps * batch_size / seconds,
          'epoch_seconds': seconds,
          **{f'train/{k}': v for k, v in train.items()},
          **{f'test/{k}': v for k, v in test.items()},
      }
      writer.write_scalars(epoch, record)
      checkpointer.save(epoch, state)
      records.append({'epoch': epoch, **record})
      plot_learning_curves(records, os.path.join(workdir, 'learning_curves.png'))
      _print_epoch(epoch, record, test)
  finally:
    checkpointer.close()

  if not records:
    raise RuntimeError(f'no epoch was trained and {workdir} holds no metrics')
  final = records[-1]
  print(f'final: epoch {final["epoch"]}/{num_epochs} test_accuracy='
        f'{_fmt(final["test_accuracy"])} test_error={_fmt_error(final["test_accuracy"])} '
        f'train_loss={final["train_loss"]:.4f} images/s={final["images_per_sec"]:.0f} '
        f'workdir={workdir}', flush=True)
  return final


def _print_epoch(epoch: int, record: dict, test: dict) -> None:
  heads = ' '.join(f'{k[:-len("/accuracy")]}={v:.3f}' for k, v in test.items()
                   if k.endswith('/accuracy') and not k.startswith('output/'))
  print(f'epoch {epoch}: train_loss={record["train_loss"]:.4f} '
        f'test_accuracy={_fmt(record["test_accuracy"])} {record["images_per_sec"]:.0f} img/s'
        + (f' | heads: {heads}' if heads else ''), flush=True)


def _fmt(value) -> str:
  return 'n/a' if value is None else f'{value:.4f}'


def _fmt_error(accuracy) -> str:
  return 'n/a' if accuracy is None else f'{100 * (1 - accuracy):.2f}%'


def check_config(config) -> None:
  """Raises ValueError naming the first impossible value among the loop's fields."""
  _check_positive(num_epochs=config.num_epochs, batch_size=config.batch_size,
                  eval_batch_size=config.eval_batch_size)
  if config.train_examples < 0:
    raise ValueError(f'train_examples must be >= 0 (0 = all), got {config.train_examples}')
  if config.image_size < 0:
    raise ValueError(f'image_size must be >= 0 (0 = native), got {config.image_size}')
  method = methods.get_method(config.method)
  method.check_config(config)


def _save_config(config, workdir: str) -> None:
  """Writes config.json; warns when a resumed run's config differs from the stored one."""
  path = os.path.join(workdir, 'config.json')
  current = json.loads(config.to_json_best_effort())
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    changed = sorted(k for k in set(stored) | set(current)
                     if stored.get(k) != current.get(k) and k not in ('num_epochs', 'progress_bar'))
    if changed:
      log.warning('the config differs from the one stored in %s in: %s', path, ', '.join(changed))
  with open(path, 'w') as f:
    json.dump(current, f, indent=2, sort_keys=True)


def train_and_evaluate(config, workdir: str) -> dict:
  """Loads the data, builds the config's method and trains it; returns the last epoch's record."""
  check_config(config)
  dataset = data_lib.load_dataset(config.dataset, data_dir=config.data_dir or None,
                                  train_examples=config.train_examples,
                                  image_size=config.image_size)
  steps = data_lib.steps_per_epoch(len(dataset.x_train), config.batch_size)
  learner = methods.get_method(config.method).build(config, dataset, steps)
  os.makedirs(workdir, exist_ok=True)
  _save_config(config, workdir)
  print(f'{config.dataset}: {len(dataset.x_train)} train / {len(dataset.x_test)} test images '
        f'{dataset.image_shape} from {dataset.source}; {jax.device_count()} '
        f'{jax.default_backend()} device(s)', flush=True)
  return fit(learner, dataset, workdir=workdir, num_epochs=config.num_epochs,
             batch_size=config.batch_size, seed=config.seed, augment=Augment(**config.augment),
             eval_batch_size=config.eval_batch_size,
             checkpoints_to_keep=config.checkpoints_to_keep, progress_bar=config.progress_bar)
