"""jaxlocal's training step against the reference PyTorch ``train.py`` on the same device, in one run.

Rows are losses (predsim, pred, glob, bpf = the backprop-free predsim of the paper's Table 5),
columns jaxlocal's step in float32 and in bfloat16 (``compute_dtype``: layers and heads on
bf16 operands, parameters, optimiser states and losses float32) and the reference's step, with
images/s from the median of ``--steps`` steps after ``--warmup`` steps (compilation excluded)
and the ratio jaxlocal / reference.

jaxlocal: ``learner.train_step`` of the config (the recipe row of ``--dataset``, e.g. CIFAR-10
VGG8B) on one random batch already on the device, as ``benchmarks/step_throughput.py``.

Reference: Nøkland & Eidnes' ``train.py`` (github.com/anokland/local-loss), read from
``--reference`` (never copied into the project) and executed as the shared anchors' README says
(``benchmarks/reference_script.py``): its source up to the main training loop, with the block
that builds its torchvision datasets and loaders replaced by the input shape and a loader of
random batches already on the device, and ``saved_variables`` replaced by ``saved_tensors``
(removed from PyTorch since). Its own ``train(epoch, lr)`` then runs its step unmodified (both
optimisers, the per-block local updates, its ``.item()`` calls and label one-hot on the host);
the step times are the intervals between the loader's batches.
The reference has no reduced-precision mode (no autocast / AMP), so it runs float32 only and the
bfloat16 ratio compares jaxlocal's bf16 step with the reference's float32 step.

  python benchmarks/versus_reference.py                      # CIFAR-10 VGG8B, batch 128
  python benchmarks/versus_reference.py --model=mlp --num_hidden=64 --batch_size=8 --steps=2

Runtime bound: 2 × len(losses) jaxlocal compilations plus (warmup + steps) × (2 jaxlocal + 1
reference) steps per loss. Measured on 2 shared CPU cores (2026-12-04): the tiny MLP above, all
four losses, 87 s; VGG8B predsim at --batch_size=32 --steps=2 --warmup=1, 3.5 min (steps of
10-13 s each). On one H100/H200 the defaults (4 losses, 3 + 30 steps) are expected to stay under
5 minutes (an estimate, not yet measured there): the slowest step, the reference's predsim at
4,011 img/s in issue 28, costs 1 s per 30 steps, and each of the 8 XLA compilations of a VGG8B
step should take well under 30 s.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time

os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')  # leave GPU memory to torch

import jax  # noqa: E402
from absl import app, flags  # noqa: E402

from common import device_name, random_batch, report  # noqa: E402
from reference_script import load_reference, random_batches, require_torch  # noqa: E402
from jaxlocal.data import dataset_info  # noqa: E402
from jaxlocal.methods import local_error  # noqa: E402
from jaxlocal.recipes import config_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOSSES = ('predsim', 'pred', 'glob', 'bpf')
# jaxlocal dataset name -> the reference's --dataset
REFERENCE_DATASETS = {'cifar10': 'CIFAR10', 'cifar100': 'CIFAR100', 'mnist': 'MNIST',
                      'fashion_mnist': 'FashionMNIST', 'kmnist': 'KuzushijiMNIST',
                      'svhn': 'SVHN', 'stl10': 'STL10'}

flags.DEFINE_string('reference', '../shared/anchors/local_loss_train.py',
                    "Path of the reference train.py (relative paths from the repository root).")
flags.DEFINE_list('losses', list(LOSSES), f'Rows, from {LOSSES}.')
flags.DEFINE_list('dtypes', ['float32', 'bfloat16'], 'jaxlocal compute dtypes (columns).')
flags.DEFINE_string('dataset', 'cifar10', 'Recipe table (and input shape) of the network.')
flags.DEFINE_string('model', 'vgg8b', "Recipe row: 'vgg8b', 'vgg11b' or 'mlp'.")
flags.DEFINE_integer('num_layers', -1, 'FC hidden blocks (-1: the row\'s).')
flags.DEFINE_integer('num_hidden', 0, 'Their width (0: the row\'s).')
flags.DEFINE_integer('batch_size', 128, 'Batch size of both steps.')
flags.DEFINE_integer('steps', 30, 'Timed steps per cell (the median is reported).')
flags.DEFINE_integer('warmup', 3, 'Untimed steps before them (after compilation).')
flags.DEFINE_boolean('skip_reference', False, 'Time jaxlocal only.')
flags.DEFINE_string('json', 'versus_reference.json', 'Where to write the results.')
FLAGS = flags.FLAGS


def row_config(loss: str):
  """The jaxlocal config of a row: the recipe of --dataset/--model (its bpf row for 'bpf')."""
  row = f'{FLAGS.model}_bpf' if loss == 'bpf' and FLAGS.model != 'mlp' else FLAGS.model
  c = config_file(FLAGS.dataset, row)
  c.loss = 'predsim' if loss == 'bpf' else loss
  c.bpf = loss == 'bpf'
  if loss == 'bpf' and FLAGS.model == 'mlp':
    c.beta = 0.01  # Table 5's predsim-bpf beta, as in the VGG bpf rows
  c.batch_size = FLAGS.batch_size
  if FLAGS.num_layers >= 0:
    c.num_layers = FLAGS.num_layers
  if FLAGS.num_hidden:
    c.num_hidden = FLAGS.num_hidden
  return c


def jaxlocal_seconds(config, info) -> list[float]:
  """Seconds of each timed jaxlocal train step (one random batch on the device)."""
  learner = local_error.build(config, info, 100)
  batch = random_batch(info, config.batch_size)
  key = jax.random.key(config.seed)
  state = jax.jit(learner.init)(key, batch['image'][:2])
  step = jax.jit(learner.train_step, donate_argnums=0).lower(state, batch, key).compile()
  seconds = []
  for i in range(FLAGS.warmup + FLAGS.steps):
    started = time.perf_counter()
    state, metrics = step(state, batch, jax.random.fold_in(key, i))
    jax.block_until_ready((state, metrics))
    seconds.append(time.perf_counter() - started)
  return seconds[FLAGS.warmup:]


def reference_flags(config, loss: str, cuda: bool) -> list[str]:
  """The reference's command line for the same network and hyperparameters."""
  argv = ['--model', config.model, '--dataset', REFERENCE_DATASETS[config.dataset],
          '--batch-size', str(config.batch_size), '--num-layers', str(config.num_layers),
          '--num-hidden', str(config.num_hidden), '--dim-in-decoder', str(config.dim_in_decoder),
          '--feat-mult', str(config.feat_mult), '--lr', str(config.learning_rate),
          '--optim', config.optimizer, '--dropout', str(config.dropout),
          '--beta', str(config.beta), '--nonlin', local_error.resolve_nonlin(config),
          '--seed', str(config.seed), '--no-print-stats']
  argv += {'predsim': ['--loss-sup', 'predsim'], 'pred': ['--loss-sup', 'pred'],
           'glob': ['--backprop'],
           'bpf': ['--loss-sup', 'predsim', '--bio', '--target-proj-size',
                   str(config.target_proj_size)]}[loss]
  if not config.batch_norm:
    argv.append('--no-batch-norm')
  return argv + ([] if cuda else ['--no-cuda'])


def reference_seconds(path: str, config, loss: str, info) -> list[float]:
  """Seconds of each timed step of the reference's own ``train()`` on random batches."""
  import torch  # noqa: PLC0415
  cuda = torch.cuda.is_available()
  height, _, channels = info.image_shape
  shape = (height, channels, info.num_classes)
  loader = random_batches(config.batch_size, shape, FLAGS.warmup + FLAGS.steps, cuda)
  with contextlib.redirect_stdout(io.StringIO()):  # its model summary and epoch line
    module = load_reference(path, reference_flags(config, loss, cuda), shape=shape,
                            train_loader=loader)
    module.train(1, config.learning_rate)
  del module
  if cuda:
    torch.cuda.empty_cache()
  times = loader.times
  return [b - a for a, b in zip(times, times[1:])][FLAGS.warmup:]


def main(argv):
  del argv
  unknown = set(FLAGS.losses) - set(LOSSES)
  if unknown:
    raise SystemExit(f'unknown losses {sorted(unknown)}; choose from {LOSSES}')
  path = FLAGS.reference if os.path.isabs(FLAGS.reference) else os.path.normpath(
      os.path.join(REPO, FLAGS.reference))
  if not FLAGS.skip_reference and not os.path.exists(path):
    raise SystemExit(f'reference not found at {path}; pass --reference=<path> or '
                     '--skip_reference')
  if not FLAGS.skip_reference:
    require_torch()
  info = dataset_info(FLAGS.dataset)
  rows = []
  for loss in FLAGS.losses:
    config = row_config(loss)
    row = {'loss': loss, 'model': config.model, 'batch_size': config.batch_size}
    for dtype in FLAGS.dtypes:
      config.compute_dtype = dtype
      seconds = jaxlocal_seconds(config, info)
      row[f'jaxlocal_{dtype}_img_s'] = config.batch_size / statistics.median(seconds)
      row[f'jaxlocal_{dtype}_step_seconds'] = seconds
    if not FLAGS.skip_reference:
      seconds = reference_seconds(path, config, loss, info)
      row['reference_float32_img_s'] = config.batch_size / statistics.median(seconds)
      row['reference_step_seconds'] = seconds
      for dtype in FLAGS.dtypes:
        row[f'{dtype}_vs_reference'] = (row[f'jaxlocal_{dtype}_img_s']
                                        / row['reference_float32_img_s'])
    rows.append(row)
    print(f'{loss}: ' + ', '.join(f'{k}={v:.1f}' for k, v in row.items()
                                  if isinstance(v, float)), flush=True)
  columns = ['loss'] + [f'jaxlocal_{d}_img_s' for d in FLAGS.dtypes]
  if not FLAGS.skip_reference:
    columns += ['reference_float32_img_s'] + [f'{d}_vs_reference' for d in FLAGS.dtypes]
    print(f'\nreference: {path}, executed in memory (not copied); its torchvision datasets and '
          'loaders REPLACED by random batches already on the device '
          f'({FLAGS.warmup} + {FLAGS.steps} steps of one batch), saved_variables -> '
          'saved_tensors; its train() otherwise unmodified, float32 only (it has no '
          'reduced-precision mode: the bfloat16 ratio is against its float32 step).')
  report(f'{FLAGS.dataset} {FLAGS.model}, batch {FLAGS.batch_size}, {device_name()}, images/s '
         f'(median of {FLAGS.steps} steps after {FLAGS.warmup} warm-up steps)', columns, rows,
         FLAGS.json, reference=None if FLAGS.skip_reference else path,
         data='random batches already on the device, for both')


if __name__ == '__main__':
  app.run(main)
