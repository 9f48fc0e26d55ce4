"""Many runs in one program: R seeds or sweep values trained by one jitted step per batch.

The R runs' states are stacked along a leading axis. Each step takes the whole stack, and for
every run gathers that run's batch from its own permutation of the one on-device dataset,
augments it with its own key and applies the learner's train step with its own key: through
``jax.vmap`` over the runs, or (``runs.vectorize='unroll'``) a Python loop over them inside the
one jitted step. Every key is the one the run would use alone (:func:`jaxlocal.train.phase_key`
and the loop's ``(seed, epoch, step)`` derivation), so run k of a group trains as the run k
trained alone, within float rounding.

A swept field (:mod:`jaxlocal.sweeps`) reaches the learner as a tracer: the learner is rebuilt
inside the trace from the config with that field's per-run value, so a learning rate or β may
differ between runs; a field that sets a shape or a Python branch fails to trace and is refused.

Each run writes its own folder ``<workdir>/run-<i>-seed<s>[...]`` (config.json, metrics.jsonl,
learning curves, checkpoints), as a solo run of its config would; the group writes
``summary.jsonl`` (mean, std, min and max of every final metric) and prints it as a table.
A later phase whose data derives from each run's own state (a Hebbian head on that run's
features, an SSL probe) trains its runs one after another, each as a group of one on its data.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlocal import data as data_lib
from jaxlocal import sweeps
from jaxlocal import workdir as workdir_lib
from jaxlocal.checkpoint import Checkpointer
from jaxlocal.config_lib import ConfigError
from jaxlocal.evaluate import make_eval_step
from jaxlocal.metrics import JsonlWriter
from jaxlocal.phases import Phase
from jaxlocal.plots import plot_learning_curves
from jaxlocal.progress import epoch_progress
from jaxlocal.train import (batch_maker, check_finite, check_positive,
                            epoch_record, output_xent_key, phase_key, print_epoch, print_final,
                            write_evaluation)

SUMMARY = 'summary.jsonl'


def check_group(config, phases_per_run: Sequence[Sequence[Phase]]) -> None:
  """Raises ConfigError (one line) when the runs cannot share one program: a device mesh,
  several processes, a block drawn at random per step, or runs whose phases differ in epochs, batch, augmentation or order."""
  mesh = config.mesh
  if mesh.data != 1 or mesh.stage != 1:
    raise ConfigError('runs.seeds / runs.sweep train on one device: set mesh.data=1 and '
                      'mesh.stage=1 (meshes, data and pipeline parallel are not supported)')
  if mesh.distributed or jax.process_count() > 1:
    raise ConfigError('runs.seeds / runs.sweep train in one process: mesh.distributed is not '
                      'supported')
  first = phases_per_run[0]
  for index, phase in enumerate(first):
    schedule = phase.learner.schedule
    if schedule is not None and schedule.kind == 'random':
      raise ConfigError(f'phase {phase.name or index!r} draws its block at random on the host '
                        'for every step (a random block schedule, e.g. ssl.scheme=rll); runs '
                        'of one program must train the same block: train them one by one')
  shape = lambda ps: [(p.name, p.num_epochs, p.batch_size, p.augment, p.order) for p in ps]
  for run, phases in enumerate(phases_per_run[1:], 1):
    if shape(phases) != shape(first):
      raise ConfigError(f'run {run}\'s phases differ from run 0\'s in name, epochs, batch, '
                        f'augmentation or order ({shape(phases)} vs {shape(first)}); the runs '
                        'of one program step together')


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree, count: int):
  return [jax.tree.map(lambda x: x[r], tree) for r in range(count)]


def over_runs(fn: Callable, in_axes: tuple, count: int, mode: str) -> Callable:
  """``fn`` over a leading run axis of the arguments whose ``in_axes`` entry is 0 (None:
  shared): ``jax.vmap``, or for ``mode='unroll'`` a Python loop over the ``count`` runs whose
  outputs are stacked (one program either way once jitted)."""
  if mode == 'vmap':
    return jax.vmap(fn, in_axes=in_axes)

  def unrolled(*args):
    outs = [fn(*(a if axis is None else jax.tree.map(lambda x: x[r], a)
                 for a, axis in zip(args, in_axes))) for r in range(count)]
    return _stack(outs)
  return unrolled


def resolve_vectorize(mode: str, init: Callable, *example) -> str:
  """``mode``, with 'auto' made 'unroll' where XLA:CPU would run the runs' convolutions (those
  ``init(*example)`` traces: the network's forward) as grouped convolutions, slower than R
  separate ones, and 'vmap' elsewhere: on other backends, and for conv-free networks on CPU
  (an MNIST MLP's 4 runs cost 0.50x 4 solo runs vmapped, 1.21x unrolled; docs/results.md)."""
  if mode != 'auto':
    return mode
  if jax.default_backend() != 'cpu':
    return 'vmap'
  jaxpr = jax.make_jaxpr(init)(*example).jaxpr
  return 'unroll' if 'conv_general_dilated' in set(_primitive_names(jaxpr)) else 'vmap'


def _primitive_names(jaxpr):
  """The names of every primitive in ``jaxpr`` and the jaxprs inside its equations."""
  for eqn in jaxpr.eqns:
    yield eqn.primitive.name
    for param in eqn.params.values():
      for inner in param if isinstance(param, (tuple, list)) else (param,):
        inner = getattr(inner, 'jaxpr', inner)   # a ClosedJaxpr's Jaxpr
        if hasattr(inner, 'eqns'):
          yield from _primitive_names(inner)


def _traced(config_fields: tuple, learner_of: Callable):
  """``learner_of(values)`` whose failure to trace names the swept fields."""
  def build(values):
    try:
      return learner_of(values)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
            jax.errors.TracerIntegerConversionError, TypeError) as error:
      raise ConfigError(f'runs.sweep: the learner cannot take {", ".join(config_fields)} as a '
                        f'per-run number (it sets a shape or a Python branch: '
                        f'{type(error).__name__}); sweep it in separate runs') from None
  return build


def train_group(phases_of: Callable[[dict | None], Sequence[Phase]], dataset: data_lib.Dataset,
                runs: Sequence[sweeps.Run], run_dirs: Sequence[str], *, vectorize: str = 'vmap',
                eval_batch_size: int = 1000, checkpoints_to_keep: int = 2,
                progress_bar: bool = True, title: str = '') -> list[dict]:
  """Trains ``runs`` together; returns each run's last epoch's record.

  ``phases_of(values)`` is the runs' phases, their learners built with ``values`` (``{field:
  scalar}``, traced inside the step; None: the phases without swept values, whose structure
  every run shares). Run r writes to ``run_dirs[r]`` and resumes from the last epoch that every
  run saved.
  """
  check_positive(eval_batch_size=eval_batch_size, checkpoints_to_keep=checkpoints_to_keep)
  count = len(runs)
  fields = sweeps.swept_fields(list(runs))
  values = {f: jnp.asarray([dict(r.overrides)[f] for r in runs], jnp.float32) for f in fields}
  phases = phases_of(None)
  datasets, states = [dataset] * count, None
  for index, phase in enumerate(phases):
    learner_of = _traced(fields, lambda v, i=index: (phases_of(v) if fields else phases)[i].learner)
    keys = [phase_key(r.seed, index, len(phases)) for r in runs]
    train = lambda data, v, k, dirs: _train_phase(
        phase, learner_of, v, data, k, dirs, vectorize, eval_batch_size, checkpoints_to_keep,
        progress_bar, title)
    if index > 0 and phase.data is not None:
      # Data derived from each run's own state (features of its trained layer): the runs
      # train this phase one after another, each on its own data.
      print(f'phase {phase.name!r} trains on data derived from each run\'s state: its '
            f'{count} runs train one after another', flush=True)
      datasets = [phase.data(s, d) for s, d in zip(_unstack(states, count), datasets)]
      done = [train(datasets[r], {f: v[r:r + 1] for f, v in values.items()}, keys[r:r + 1],
                    run_dirs[r:r + 1]) for r in range(count)]
      states = _stack([jax.tree.map(lambda x: x[0], s) for s, _ in done])
      histories = [h[0] for _, h in done]
    else:
      if phase.data is not None:
        datasets = [phase.data(None, datasets[0])] * count
      states, histories = train(datasets[0], values, keys, run_dirs)
    records = [h[-1] for h in histories]
    if phase.evaluators or phase.finish is not None:
      for r, state in enumerate(_unstack(states, count)):
        for evaluator in phase.evaluators:
          write_evaluation(evaluator, evaluator.fn(state, datasets[r]), run_dirs[r],
                           epoch=records[r]['epoch'], phase=phase.name)
        if phase.finish is not None:
          phase.finish(state, run_dirs[r], histories[r])
  for record, run_dir in zip(records, run_dirs):
    print_final(record, phases[-1].num_epochs, run_dir)
  return records


def _train_phase(phase: Phase, learner_of, values: dict, dataset: data_lib.Dataset, keys,
                 run_dirs, mode: str, eval_batch_size: int, checkpoints_to_keep: int,
                 progress_bar: bool, title: str):
  """Trains one phase of every run (resuming all from the last epoch all saved): returns the
  stacked states and each run's epoch records of this phase."""
  count, learner, batch_size = len(keys), phase.learner, phase.batch_size
  check_positive(num_epochs=phase.num_epochs)
  steps = data_lib.steps_per_epoch(len(dataset.x_train), batch_size)
  split = [jax.random.split(k) for k in keys]
  init_keys = jnp.stack([k[0] for k in split])
  train_keys = [k[1] for k in split]
  x_train, y_train = jax.device_put((dataset.x_train, dataset.y_train))
  example = data_lib.preprocess(None, dataset.x_train[:2], mean=dataset.mean, std=dataset.std)
  if count == 1:
    mode = 'vmap'
  elif mode == 'auto':
    mode = resolve_vectorize(mode, learner.init, split[0][0], example)
    print(f'runs.vectorize=auto{" [" + phase.name + "]" if phase.name else ""}: {mode}',
          flush=True)
  init = jax.jit(over_runs(lambda k, v: learner_of(v).init(k, example), (0, 0), count, mode))
  state = init(init_keys, values)

  label = f' [{phase.name}]' if phase.name else ''
  checkpointers = [Checkpointer(os.path.join(d, 'checkpoints', phase.name), checkpoints_to_keep)
                   for d in run_dirs]
  writers = [JsonlWriter(os.path.join(d, 'metrics.jsonl')) for d in run_dirs]
  try:
    start = min(c.latest_epoch() for c in checkpointers)
    if start:
      like = _unstack(state, count)
      state = _stack([c.restore(start, s) for c, s in zip(checkpointers, like)])
      print(f'resumed {count} runs{label} from epoch {start}', flush=True)
    if start >= phase.num_epochs:
      print(f'the {count} runs{label} had already reached epoch {start} (num_epochs='
            f'{phase.num_epochs}): nothing to train.', flush=True)
    history = []
    for writer in writers:
      writer.truncate(lambda r: r.get('phase', '') != phase.name or r['epoch'] <= start)
      history.append([r for r in writer.read() if r.get('phase', '') == phase.name])
    run_epoch = _epoch_runner(phase, learner_of, values, dataset, state, x_train, y_train,
                              steps, mode)
    evaluate = _group_evaluator(phase, learner_of, values, dataset, count, mode)
    xent = output_xent_key(learner)
    for epoch in range(start + 1, phase.num_epochs + 1):
      with epoch_progress(steps * batch_size * count,
                          f'epoch {epoch}/{phase.num_epochs}{label} ({count} runs)',
                          progress_bar) as bar:
        try:
          state, trains, seconds = run_epoch(
              state, [jax.random.fold_in(k, epoch) for k in train_keys], bar, epoch)
          if learner.check is not None:
            for run_state in _unstack(state, count):
              learner.check(run_state)
        except FloatingPointError as error:
          raise type(error)(f'{error} (epoch {epoch}{label}, {count} runs). Nothing of this '
                            'epoch was saved; lower the learning rate and rerun.') from None
      tests = evaluate(state, dataset.x_test, dataset.y_test, eval_batch_size)
      run_states = _unstack(state, count)
      for r in range(count):
        record = epoch_record(phase.name, trains[r], tests[r], xent,
                              steps * batch_size / seconds, seconds)
        writers[r].write_scalars(epoch, record)
        checkpointers[r].save(epoch, run_states[r])
        history[r].append({'epoch': epoch, **record})
        plot_name = f'learning_curves_{phase.name}.png' if phase.name else 'learning_curves.png'
        plot_learning_curves(history[r], os.path.join(run_dirs[r], plot_name),
                             title=f'{title or run_dirs[r]}{label}')
        print_epoch(f'{epoch}{label} run {r}', record, tests[r])
  finally:
    for c in checkpointers:
      c.close()
  if not all(history):
    raise RuntimeError(f'no epoch was trained{label} and the runs hold no metrics')
  return state, history


def _epoch_runner(phase: Phase, learner_of, values, dataset, state, x_train, y_train,
                  steps: int, mode: str):
  """``run_epoch(states, epoch keys, bar, epoch) -> (states, [train metrics per run],
  seconds)``: one jitted step per batch (per block of a one-block schedule) for all runs."""
  learner, batch_size = phase.learner, phase.batch_size
  count = jax.tree.leaves(state)[0].shape[0]
  make_batch = batch_maker(dataset, batch_size, phase.augment, None)

  def fused(branch: int):
    def step(state, sums, x_all, y_all, perm, key, i, v):
      run_learner = learner_of(v)
      train_step = (run_learner.block_steps[branch] if run_learner.block_steps
                    else run_learner.train_step)
      batch, step_key = make_batch(x_all, y_all, perm, key, i)
      state, metrics = train_step(state, batch, step_key)
      return state, jax.tree.map(jnp.add, sums, metrics)
    return jax.jit(over_runs(step, (0, 0, None, None, 0, 0, None, 0), count, mode),
                   donate_argnums=(0, 1))

  one = jax.tree.map(lambda x: x[0], state)
  images = jax.eval_shape(
      lambda x: data_lib.preprocess(jax.random.key(0), x, mean=dataset.mean, std=dataset.std,
                                    **dataclasses.asdict(phase.augment)),
      jax.ShapeDtypeStruct((batch_size, *dataset.image_shape), x_train.dtype))
  batch = {'image': images, 'label': jax.ShapeDtypeStruct((batch_size,), jnp.int32),
           'index': jax.ShapeDtypeStruct((batch_size,), jnp.int32)}
  sums_shape = jax.eval_shape(learner.train_step, one, batch, jax.random.key(0))[1]
  new_sums = lambda: jax.tree.map(lambda s: jnp.zeros((count, *s.shape), s.dtype), sums_shape)
  # Compiled ahead, so no epoch's images/s includes compilation (as the solo loop does).
  perms_like = np.zeros((count, len(x_train)), np.int32)
  keys_like = jnp.stack([jax.random.key(0)] * count)
  branches = [fused(b).lower(state, new_sums(), x_train, y_train, perms_like, keys_like,
                             np.int32(0), values).compile()
              for b in range(len(learner.block_steps or (None,)))]
  sync_every = max(1, steps // 20)

  def run_epoch(state, keys, bar, epoch):
    perms, step_keys = [], []
    for key in keys:
      perm_key, step_key = jax.random.split(key)
      perms.append(phase.order.permutation(perm_key, dataset.y_train, epoch=epoch,
                                           num_classes=dataset.num_classes,
                                           batch_size=batch_size))
      step_keys.append(step_key)
    perms, step_keys = jnp.stack(perms), jnp.stack(step_keys)
    sums = new_sums()
    started = time.perf_counter()
    if learner.block_steps:  # the same schedule for every run: run 0's step decides
      active = jax.device_get(jax.vmap(lambda t: learner.schedule.active_block(
          t, len(branches)))(state.step[0] + jnp.arange(steps)))
    else:
      active = [0] * steps
    for i in range(steps):
      state, sums = branches[int(active[i])](state, sums, x_train, y_train, perms, step_keys,
                                             np.int32(i), values)
      if (i + 1) % sync_every == 0 or i + 1 == steps:
        check_finite(sums, f'step {i + 1}/{steps}')
        bar.update((i + 1) * batch_size * count - bar.n)
    seconds = time.perf_counter() - started
    sums = jax.device_get(sums)
    means = [{k: float(v[r]) / steps for k, v in sums.items()} for r in range(count)]
    return state, means, seconds

  return run_epoch


def _group_evaluator(phase: Phase, learner_of, values, dataset, count: int, mode: str):
  """``evaluate(states, x, y, batch_size) -> [metrics per run]``: every run's eval metrics as
  means over (x, y), one jitted call per batch for all runs."""
  def one(state, v, x, y, mask):
    return make_eval_step(learner_of(v), dataset, phase.augment)(state, x, y, mask)
  step = jax.jit(over_runs(one, (0, 0, None, None, None), count, mode))

  def evaluate(state, x, y, batch_size):
    sums = None
    for bx, by, mask in data_lib.eval_batches(x, y, batch_size):
      batch_sums = step(state, values, bx, by, mask)
      sums = batch_sums if sums is None else jax.tree.map(jnp.add, sums, batch_sums)
    sums = jax.device_get(sums)
    return [{k: float(v[r]) / len(x) for k, v in sums.items()} for r in range(count)]
  return evaluate


def summarize(records: Sequence[dict]) -> dict[str, dict]:
  """``{metric: {mean, std (ddof 0), min, max}}`` of every numeric final metric the runs
  share (None-valued metrics are skipped)."""
  summary = {}
  for key in records[0]:
    vals = [r.get(key) for r in records]
    if key == 'epoch' or any(not isinstance(v, (int, float)) or isinstance(v, bool)
                             or v is None or not math.isfinite(v) for v in vals):
      continue
    arr = np.asarray(vals, np.float64)
    summary[key] = {'mean': float(arr.mean()), 'std': float(arr.std()),
                    'min': float(arr.min()), 'max': float(arr.max())}
  return summary


def write_summary(workdir: str, runs: Sequence[sweeps.Run], records: Sequence[dict]) -> dict:
  """Writes ``<workdir>/summary.jsonl`` (one line per metric) and prints the table of the
  top-level metrics; returns the summary."""
  summary = summarize(records)
  with open(os.path.join(workdir, SUMMARY), 'w') as f:
    for metric, stats in summary.items():
      f.write(json.dumps({'metric': metric, 'runs': len(runs), **stats}) + '\n')
  print(f'{len(runs)} runs: mean ± std (min … max) of the final epoch', flush=True)
  for metric, s in summary.items():
    if '/' not in metric:
      print(f'  {metric:16s} {s["mean"]:.4f} ± {s["std"]:.4f} ({s["min"]:.4f} … '
            f'{s["max"]:.4f})', flush=True)
  return summary


def train_config_group(config, method, dataset: data_lib.Dataset, workdir: str,
                       title: str = '') -> list[dict]:
  """The config's runs (:func:`jaxlocal.sweeps.parse_runs`) of ``method`` trained together in
  ``workdir``'s run folders; writes each run's config.json and the group's summary."""
  runs = sweeps.parse_runs(config)
  solo = [sweeps.run_config(config, r) for r in runs]
  check_group(config, [method.phases(c, dataset) for c in solo])
  run_dirs = [os.path.join(workdir, r.folder(i)) for i, r in enumerate(runs)]
  for run_dir, run_config in zip(run_dirs, solo):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, workdir_lib.CONFIG), 'w') as f:
      json.dump(workdir_lib.config_record(run_config), f, indent=2, sort_keys=True)
  base = solo[0]

  def phases_of(values):
    if values is None:
      return method.phases(base, dataset)
    return method.phases(sweeps.traced_config(base, values), dataset)
  print(f'{len(runs)} runs in one program (runs.vectorize={config.runs.vectorize}): '
        + ', '.join(r.folder(i) for i, r in enumerate(runs)), flush=True)
  records = train_group(phases_of, dataset, runs, run_dirs, vectorize=config.runs.vectorize,
                        eval_batch_size=config.eval_batch_size,
                        checkpoints_to_keep=config.checkpoints_to_keep,
                        progress_bar=config.progress_bar, title=title)
  write_summary(workdir, runs, records)
  return records
