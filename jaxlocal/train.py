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
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxlocal import data as data_lib
from jaxlocal import workdir as workdir_lib
from jaxlocal.blocks import Learner
from jaxlocal.checkpoint import Checkpointer
from jaxlocal.config_lib import flatten
from jaxlocal.data.augment import Augment
from jaxlocal.evaluate import Evaluator, evaluate, make_eval_step, mean_over
from jaxlocal.metrics import JsonlWriter
from jaxlocal.parallel.mesh import (DATA, STAGE, MeshSpec, batch_sharded, check_divisible,
                                    dataset_sharding, move, put, replicated)
from jaxlocal.parallel.cost import balanced_bounds
from jaxlocal.parallel.pipeline import Pipeline
from jaxlocal.parallel.stages import stages_of
from jaxlocal.plots import plot_learning_curves
from jaxlocal.progress import epoch_progress
from jaxlocal.phases import Phase

log = logging.getLogger('jaxlocal')


class TrainingDivergedError(FloatingPointError):
  """A training metric (the loss, usually) became NaN or infinite."""


class RunInterrupted(KeyboardInterrupt):
  """Ctrl-C during training; the message says which epoch is saved and how to resume."""


def check_positive(**values):
  """Raises ValueError naming the first of ``values`` (name=value) that is not positive."""
  for name, value in values.items():
    if value <= 0:
      raise ValueError(f'{name} must be positive, got {value}')


def make_epoch_runner(learner: Learner, dataset: data_lib.Dataset, batch_size: int,
                      augment: Augment, state, x_train, y_train,
                      order: data_lib.BatchOrder = data_lib.BatchOrder(), mesh=None,
                      stage_bounds: Sequence[int] = ()):
  """Compiles the train step once (once per block under a one-block schedule) and returns
  ``run_epoch``.

  The step is one jitted call that takes batch ``i`` of the epoch's permutation (``order``)
  from the on-device dataset, augments it, trains, and adds its metrics to running sums. The
  batch holds ``image``, ``label`` and ``index`` (the examples' positions in the training set).
  On a ``mesh`` (:mod:`jaxlocal.parallel.mesh`) the training set is split along ``data``
  (:func:`~jaxlocal.parallel.mesh.dataset_sharding`), the state is replicated, and the batch is
  split along ``data`` from the gather on, augmentation included; XLA gathers each device's
  examples and inserts the gradient all-reduce. With a ``stage`` axis the blocks train as a pipeline cut at
  ``stage_bounds`` (:mod:`jaxlocal.parallel.pipeline`). ``run_epoch(state, key, bar, epoch) ->
  (state, mean train metrics, seconds)`` raises :class:`TrainingDivergedError` when a metric stops being finite.
  """
  steps = data_lib.steps_per_epoch(len(x_train), batch_size)
  mesh = mesh or MeshSpec().make()
  check_divisible(batch_size, mesh)
  if mesh.shape[STAGE] > 1:
    return _make_pipeline_epoch_runner(learner, dataset, batch_size, augment, order, mesh,
                                       stage_bounds)
  rep = replicated(mesh)
  make_batch = batch_maker(dataset, batch_size, augment, batch_sharded(mesh))

  def fused(train_step):
    def step(state, sums, x_all, y_all, perm, key, i):
      batch, step_key = make_batch(x_all, y_all, perm, key, i)
      state, metrics = train_step(state, batch, step_key)
      return state, jax.tree.map(jnp.add, sums, metrics)
    return step

  images = jax.eval_shape(  # (2B, ...) when the augmentation makes two views
      lambda x: data_lib.preprocess(jax.random.key(0), x, mean=dataset.mean, std=dataset.std,
                                    **dataclasses.asdict(augment)),
      jax.ShapeDtypeStruct((batch_size, *dataset.image_shape), x_train.dtype))
  batch = {'image': images, 'label': jax.ShapeDtypeStruct((batch_size,), jnp.int32),
           'index': jax.ShapeDtypeStruct((batch_size,), jnp.int32)}
  sums_shape = jax.eval_shape(learner.train_step, state, batch, jax.random.key(0))[1]
  new_sums = lambda: put(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), sums_shape), rep)
  # Compiled once, ahead of time, so no epoch's images/s includes compilation. Under a one-block
  # schedule every block's step is compiled and the host picks one per step (see Learner).
  branches = learner.block_steps or (learner.train_step,)
  data = x_train.sharding if isinstance(x_train, jax.Array) else rep
  compiled = [jax.jit(fused(branch), donate_argnums=(0, 1),
                      in_shardings=(rep, rep, data, data, rep, rep, rep),
                      out_shardings=rep).lower(
      state, new_sums(), x_train, y_train, np.zeros(len(x_train), np.int32),
      put(jax.random.key(0), rep), np.int32(0)).compile() for branch in branches]
  if learner.block_steps:
    active_blocks = jax.jit(lambda start: jax.vmap(
        lambda t: learner.schedule.active_block(t, len(branches)))(start + jnp.arange(steps)))
  sync_every = max(1, steps // 20)

  def run_epoch(state, key, bar, epoch):
    perm_key, step_key = jax.random.split(key)
    perm = put(order.permutation(perm_key, dataset.y_train, epoch=epoch,
                                 num_classes=dataset.num_classes, batch_size=batch_size), rep)
    sums = new_sums()
    started = time.perf_counter()
    active = (jax.device_get(active_blocks(state.step)) if learner.block_steps
              else [0] * steps)
    for i in range(steps):
      state, sums = compiled[int(active[i])](state, sums, x_train, y_train, perm, step_key,
                                             np.int32(i))
      if (i + 1) % sync_every == 0 or i + 1 == steps:
        check_finite(sums, f'step {i + 1}/{steps}')  # waits for the device
        bar.update((i + 1) * batch_size - bar.n)
    return state, mean_over(sums, steps), time.perf_counter() - started

  return run_epoch


def batch_maker(dataset: data_lib.Dataset, batch_size: int, augment: Augment, sharding):
  """``make_batch(x_all, y_all, perm, key, i) -> (batch, step_key)``, jit-able: batch ``i`` of
  the permutation gathered from the on-device dataset and augmented, split by ``sharding``
  from the gather on (None: no constraint)."""
  shard = ((lambda tree: tree) if sharding is None else
           (lambda tree: jax.lax.with_sharding_constraint(tree, sharding)))

  def make_batch(x_all, y_all, perm, key, i):
    idx = data_lib.batch_indices(perm, i, batch_size)
    aug_key, step_key = jax.random.split(jax.random.fold_in(key, i))
    images = data_lib.preprocess(aug_key, shard(x_all[idx]), mean=dataset.mean,
                                 std=dataset.std, **dataclasses.asdict(augment))
    return shard({'image': images, 'label': y_all[idx], 'index': idx}), step_key
  return make_batch


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


def check_finite(sums: dict, where: str) -> None:
  """Raises :class:`TrainingDivergedError` naming the metrics in ``sums`` that are not finite."""
  if not bool(_all_finite(sums)):
    bad = sorted(k for k, v in jax.device_get(sums).items() if not math.isfinite(v))
    raise TrainingDivergedError(f'the training metrics {bad} became NaN or infinite at {where}')


def _make_pipeline_epoch_runner(learner: Learner, dataset: data_lib.Dataset, batch_size: int,
                                augment: Augment, order, mesh, stage_bounds):
  """``run_epoch`` of :func:`make_epoch_runner` for a block-parallel mesh (``stage`` > 1).

  The dataset lives on stage 0's devices (split along ``data``), which gather and augment each
  micro-batch; an epoch
  is one pass of the delayed schedule (:mod:`jaxlocal.parallel.pipeline`), after which the
  stages' states are merged back into the network's state, replicated over the mesh.
  """
  if learner.stage_step is None:
    raise ValueError('mesh.stage > 1 (block parallel) needs a network of blocks that all learn '
                     'at once from local objectives: local_error with a local loss (pred, sim, '
                     'predsim, bpf) or associated. This learner trains globally, one block at '
                     'a time, or is not built from blocks; use mesh.data for data parallel.')
  steps = data_lib.steps_per_epoch(len(dataset.x_train), batch_size)
  staged = stages_of(learner, stage_bounds)
  pipe = Pipeline(staged, mesh)
  rep0, rep = pipe.replicated[0], replicated(mesh)
  data = dataset_sharding(pipe.meshes[0], len(dataset.x_train))
  x_train, y_train = put((dataset.x_train, dataset.y_train), data)
  feed_step = jax.jit(batch_maker(dataset, batch_size, augment, pipe.input_sharding()),
                      in_shardings=(data, data, rep0, rep0, rep0),
                      out_shardings=(pipe.input_sharding(), rep0))

  def run_epoch(state, key, bar, epoch):
    perm_key, step_key = jax.random.split(key)
    perm = put(order.permutation(perm_key, dataset.y_train, epoch=epoch,
                                 num_classes=dataset.num_classes, batch_size=batch_size), rep0)
    step_key = put(step_key, rep0)
    states = pipe.place(staged.split(state))
    sums = pipe.zero_sums(states, feed_step(x_train, y_train, perm, step_key, np.int32(0))[0])
    started = time.perf_counter()
    feed = lambda m: feed_step(x_train, y_train, perm, step_key, np.int32(m))[0]
    states, sums = pipe.run(states, sums, feed, steps, step_key)
    for k, stage_sums in enumerate(sums):
      check_finite(stage_sums, f'stage {k} in this epoch')
    seconds = time.perf_counter() - started
    bar.update(steps * batch_size - bar.n)
    metrics = {k: float(v) / steps for k, v in pipe.metrics(sums).items()}
    return move(staged.merge(states), rep), metrics, seconds

  return run_epoch


def fit(learner: Learner, dataset: data_lib.Dataset, *, workdir: str, num_epochs: int,
        batch_size: int, seed: int = 0, augment: Augment = Augment(),
        order: data_lib.BatchOrder = data_lib.BatchOrder(), eval_batch_size: int = 1000,
        checkpoints_to_keep: int = 2, progress_bar: bool = True,
        mesh: MeshSpec = MeshSpec(), title: str = '') -> dict:
  """Trains ``learner`` on ``dataset``, evaluating and checkpointing after every epoch.

  Resumes from the last checkpoint in ``workdir`` if there is one. Writes
  ``metrics.jsonl`` and ``learning_curves.png`` (titled ``title``) there. Returns the last
  epoch's record.
  Raises :class:`TrainingDivergedError` on a NaN/inf loss, leaving the last good checkpoint.
  """
  phase = Phase('', learner, num_epochs, batch_size, augment, order=order)
  return fit_phases([phase], dataset, workdir=workdir, seed=seed,
                    eval_batch_size=eval_batch_size, checkpoints_to_keep=checkpoints_to_keep,
                    progress_bar=progress_bar, mesh=mesh, title=title)


def fit_phases(phases: Sequence[Phase], dataset: data_lib.Dataset, *, workdir: str,
               seed: int = 0, eval_batch_size: int = 1000, checkpoints_to_keep: int = 2,
               progress_bar: bool = True, mesh: MeshSpec = MeshSpec(), title: str = '',
               on_accept: Callable[[str, int], None] | None = None) -> dict:
  """Runs ``phases`` in order, each resumable on its own; returns the last epoch's record.

  A single unnamed phase keeps its checkpoints in ``<workdir>/checkpoints``; named phases in
  ``<workdir>/checkpoints/<name>``, with a ``phase`` field in their metrics records. ``mesh``
  places every phase on a device mesh (:class:`~jaxlocal.parallel.mesh.MeshSpec`).
  ``on_accept(phase, epoch)`` is called when a phase's checkpoint (of ``epoch``, 0 = none) has
  been restored, before anything is written to the workdir (e.g. to write the run's config).
  When a phase is complete (also when it already was), its evaluators score its state
  (:func:`write_evaluation`), then its ``finish`` runs.
  Ctrl-C raises :class:`RunInterrupted`, saying which epoch is saved.
  """
  if not phases:
    raise ValueError('fit_phases needs at least one phase')
  os.makedirs(workdir, exist_ok=True)
  state, record, phase_data = None, None, dataset
  for index, phase in enumerate(phases):
    if phase.data is not None:
      phase_data = phase.data(state, phase_data)
    state, records = _train_phase(phase, phase_data, phase_key(seed, index, len(phases)),
                                  workdir=workdir, eval_batch_size=eval_batch_size,
                                  checkpoints_to_keep=checkpoints_to_keep,
                                  progress_bar=progress_bar, mesh=mesh, title=title,
                                  on_accept=on_accept or (lambda name, epoch: None))
    record = records[-1]
    for evaluator in phase.evaluators:
      write_evaluation(evaluator, evaluator.fn(state, phase_data), workdir,
                       epoch=record['epoch'], phase=phase.name)
    if phase.finish is not None:
      phase.finish(state, workdir, records)
  print_final(record, phases[-1].num_epochs, workdir)
  return record


def write_evaluation(evaluator: Evaluator, record: dict, workdir: str, *, epoch: int,
                     phase: str = '') -> None:
  """Writes an evaluator's ``record`` of a phase's state at ``epoch``: as JSON to
  ``<workdir>/<evaluator.filename>``, as one printed summary line, and as one line of
  ``metrics.jsonl`` (``{'epoch', 'evaluator', 'phase', <flattened record: 'a/b'>}``) that
  replaces the evaluator's earlier line of this phase, so a rerun writes it once. The learning
  curves skip these lines."""
  if jax.process_index() == 0:
    with open(os.path.join(workdir, evaluator.filename), 'w') as f:
      json.dump(record, f, indent=2)
  writer = JsonlWriter(os.path.join(workdir, per_process('metrics.jsonl')))
  writer.truncate(lambda r: not (r.get('evaluator') == evaluator.name
                                 and r.get('phase', '') == phase))
  flat = flatten(record, sep='/')
  writer.write_scalars(epoch, {'evaluator': evaluator.name, 'phase': phase,
                               **{k: v for k, v in flat.items() if isinstance(v, (int, float))}})
  summary = (evaluator.summary(record) if evaluator.summary else
             ' '.join(f'{k}={v}' for k, v in flat.items()))
  print(f'{evaluator.name}{f" [{phase}]" if phase else ""}: {summary}', flush=True)


def phase_key(seed: int, index: int, num_phases: int) -> jax.Array:
  """The key of phase ``index``: the run's seed itself for a single phase."""
  key = jax.random.key(seed)
  return key if num_phases == 1 else jax.random.fold_in(key, index)


def initial_state(learner: Learner, dataset: data_lib.Dataset, key, sharding=None):
  """``learner.init`` on two preprocessed training images of ``dataset`` (placed by
  ``sharding``, e.g. replicated over a mesh)."""
  example = data_lib.preprocess(None, dataset.x_train[:2], mean=dataset.mean, std=dataset.std)
  if sharding is None:
    return jax.jit(learner.init)(key, example)
  return jax.jit(learner.init, out_shardings=sharding)(put(key, sharding),
                                                        put(example, sharding))


def restored_states(phases: Sequence[Phase], dataset: data_lib.Dataset, workdir: str,
                    seed: int = 0) -> dict:
  """``{phase name: state}`` of every phase's last checkpoint in ``workdir``, each phase's data
  derived from the previous phase's restored state as :func:`fit_phases` derives it.

  Raises FileNotFoundError when a phase has no checkpoint.
  """
  states, state, phase_data = {}, None, dataset
  for index, phase in enumerate(phases):
    if phase.data is not None:
      phase_data = phase.data(state, phase_data)
    init_key, _ = jax.random.split(phase_key(seed, index, len(phases)))
    like = initial_state(phase.learner, phase_data, init_key)
    checkpointer = Checkpointer(os.path.join(workdir, 'checkpoints', phase.name))
    try:
      epoch = checkpointer.latest_epoch()
      if not epoch:
        raise FileNotFoundError(f'no checkpoint in {checkpointer.directory}: train the run first')
      state = checkpointer.restore(epoch, like)
    finally:
      checkpointer.close()
    states[phase.name] = state
  return states


def _train_phase(phase: Phase, dataset: data_lib.Dataset, key, *, workdir: str,
                 eval_batch_size: int, checkpoints_to_keep: int, progress_bar: bool,
                 mesh: MeshSpec, title: str, on_accept: Callable[[str, int], None]):
  """Trains one phase (resuming it if checkpointed): returns (state, the phase's epoch
  records)."""
  check_positive(num_epochs=phase.num_epochs, eval_batch_size=eval_batch_size,
                  checkpoints_to_keep=checkpoints_to_keep)
  learner, batch_size = phase.learner, phase.batch_size
  steps = data_lib.steps_per_epoch(len(dataset.x_train), batch_size)
  init_key, train_key = jax.random.split(key)
  device_mesh = mesh.make()
  rep = replicated(device_mesh)
  x_train, y_train = put((dataset.x_train, dataset.y_train), dataset_sharding(device_mesh,
                                                                            len(dataset.x_train)))
  state = initial_state(learner, dataset, init_key, rep)

  label = f' [{phase.name}]' if phase.name else ''
  checkpointer = Checkpointer(os.path.join(workdir, 'checkpoints', phase.name),
                              checkpoints_to_keep)
  try:
    writer = JsonlWriter(os.path.join(workdir, per_process('metrics.jsonl')))
    start = checkpointer.latest_epoch()
    if start:
      state = checkpointer.restore(start, state)
    on_accept(phase.name, start)
    if start >= phase.num_epochs:
      print(f'{workdir}{label} had already reached epoch {start} (num_epochs='
            f'{phase.num_epochs}): nothing to train; raise num_epochs to train further.',
            flush=True)
    elif start:
      print(f'resumed{label} from epoch {start} ({checkpointer.directory}/{start})', flush=True)
    writer.truncate(lambda r: r.get('phase', '') != phase.name or r['epoch'] <= start)
    records = [r for r in writer.read()
               if r.get('phase', '') == phase.name and 'evaluator' not in r]
    bounds = mesh.stage_bounds
    if mesh.stage > 1 and not bounds and learner.stage_step is not None:
      bounds = _measured_bounds(learner, state, dataset, batch_size, phase.augment, mesh.stage)
    run_epoch = make_epoch_runner(learner, dataset, batch_size, phase.augment, state, x_train,
                                  y_train, phase.order, device_mesh, bounds)
    eval_step = make_eval_step(learner, dataset, phase.augment, device_mesh)

    epoch = start + 1
    try:
      for epoch in range(start + 1, phase.num_epochs + 1):
        with epoch_progress(steps * batch_size, f'epoch {epoch}/{phase.num_epochs}{label}',
                            progress_bar) as bar:
          try:
            state, train, seconds = run_epoch(state, jax.random.fold_in(train_key, epoch), bar,
                                                epoch)
            if learner.check is not None:
              learner.check(state)
          except FloatingPointError as error:
            raise type(error)(
                f'{error} (epoch {epoch}{label}). Nothing of this epoch was saved; the last good '
                f'checkpoint (epoch {checkpointer.latest_epoch() or "none"}) in {workdir} is '
                'intact. Lower the learning rate or check the data, then rerun.') from None
        test = evaluate(eval_step, state, dataset.x_test, dataset.y_test, eval_batch_size, rep)
        record = epoch_record(phase.name, train, test, output_xent_key(learner),
                              steps * batch_size / seconds, seconds)
        writer.write_scalars(epoch, record)
        checkpointer.save(epoch, state)
        records.append({'epoch': epoch, **record})
        plot_name = f'learning_curves_{phase.name}.png' if phase.name else 'learning_curves.png'
        if jax.process_index() == 0:
          plot_learning_curves(records, os.path.join(workdir, plot_name),
                               title=f'{title or workdir}{label}')
        print_epoch(f'{epoch}{label}', record, test)
    except KeyboardInterrupt:
      saved = checkpointer.latest_epoch()
      raise RunInterrupted(
          f'interrupted in epoch {epoch}{label}; '
          + (f'epoch {saved} is saved in {checkpointer.directory}/{saved}' if saved else
             'no epoch of it was saved yet')
          + '. Rerun the same command to resume.') from None
  finally:
    checkpointer.close()
  if not records:
    raise RuntimeError(f'no epoch was trained and {workdir} holds no metrics{label}')
  return state, records


def epoch_record(phase_name: str, train: dict, test: dict, xent: str, images_per_sec: float,
                 seconds: float) -> dict:
  """An epoch's metrics record (without ``epoch``) from its mean train and test metrics."""
  return {
      **({'phase': phase_name} if phase_name else {}),
      'train_loss': train.get('loss'),
      'test_loss': test.get('loss'),
      'train_xent': train.get(xent),
      'test_xent': test.get(xent),
      'train_accuracy': train.get('accuracy'),
      'test_accuracy': test.get('accuracy'),
      'images_per_sec': images_per_sec,
      'epoch_seconds': seconds,
      **{f'train/{k}': v for k, v in train.items()},
      **{f'test/{k}': v for k, v in test.items()},
  }


def print_final(record: dict, goal: int, workdir: str) -> None:
  """The run's last line: its final epoch (of ``goal``), accuracy, error, loss and speed."""
  epochs = (f'{record["epoch"]}/{goal}' if record['epoch'] <= goal else
            f'{record["epoch"]} (already reached before this run; num_epochs={goal})')
  print(f'final: epoch {epochs} test_accuracy='
        f'{_fmt(record["test_accuracy"])} test_error={_fmt_error(record["test_accuracy"])} '
        f'train_loss={_fmt(record["train_loss"])} images/s={record["images_per_sec"]:.0f} '
        f'workdir={workdir}', flush=True)


def output_xent_key(learner: Learner) -> str:
  """The metric of the network's output cross-entropy: ``<last block>/xent``."""
  return f'{learner.block_names[-1]}/xent' if learner.block_names else 'xent'


def _measured_bounds(learner: Learner, state, dataset: data_lib.Dataset, batch_size: int,
                     augment: Augment, num_stages: int) -> tuple[int, ...]:
  """Stage bounds balancing the blocks' step times, measured on one device and one batch."""
  x, y = dataset.x_train[:batch_size], dataset.y_train[:batch_size]
  images = data_lib.preprocess(jax.random.key(0), x, mean=dataset.mean, std=dataset.std,
                               **dataclasses.asdict(augment))
  batch = {'image': images, 'label': jnp.asarray(y), 'index': jnp.arange(batch_size)}
  bounds = balanced_bounds(learner, jax.device_get(state), batch, jax.random.key(0), num_stages)
  log.warning('pipeline stages start at blocks %s (balanced by measured step time)', bounds)
  return bounds


def per_process(name: str) -> str:
  """``name`` for process 0; ``<name>.process<i>`` for the other processes of a multi-host run,
  which train the same model and keep their own records beside it."""
  index = jax.process_index()
  return name if index == 0 else f'{name}.process{index}'


def print_epoch(epoch: str, record: dict, test: dict) -> None:
  """One line per epoch: loss and accuracy, or a phase's own metrics when it has neither."""
  if record['test_accuracy'] is None and record['train_loss'] is None:
    summary = ' '.join(f'{k}={v:.4g}' for k, v in test.items())
  elif record['test_accuracy'] is None:  # e.g. a self-supervised encoder
    summary = f'train_loss={_fmt(record["train_loss"])} test_loss={_fmt(record["test_loss"])}'
  else:
    summary = (f'train_loss={_fmt(record["train_loss"])} '
               f'test_accuracy={_fmt(record["test_accuracy"])}')
  heads = ' '.join(f'{k[:-len("/accuracy")]}={v:.3f}' for k, v in test.items()
                   if k.endswith('/accuracy') and not k.startswith('output/'))
  print(f'epoch {epoch}: {summary} {record["images_per_sec"]:.0f} img/s'
        + (f' | heads: {heads}' if heads else ''), flush=True)


def _fmt(value) -> str:
  return 'n/a' if value is None else f'{value:.4f}'


def _fmt_error(accuracy) -> str:
  return 'n/a' if accuracy is None else f'{100 * (1 - accuracy):.2f}%'
