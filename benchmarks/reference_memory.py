"""Peak memory of the reference PyTorch implementation (``local_loss_train.py`` of Nøkland &
Eidnes) training the same networks, for comparison with jaxlocal's compiled step sizes
(``benchmarks/local_vs_global.py``, ``benchmarks/max_batch.py``).

Each loss runs in its own process: the reference script is executed by path (never copied),
unchanged except that ``torchvision`` is replaced by a stand-in whose datasets are random
images of the dataset's shape (no download) and whose transforms do nothing. It trains
``--steps`` batches (one epoch) and evaluates one batch. On CPU the figure is the process's
peak resident set size (``ru_maxrss``) minus that after importing torch: parameters, Adam
state, activations and the allocator's caches; on a GPU (``--cuda``) it is
``torch.cuda.max_memory_allocated()``.

  python benchmarks/reference_memory.py --reference=../shared/anchors/local_loss_train.py
  python benchmarks/reference_memory.py --losses=pred,glob --batch_size=32 --steps=2
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import subprocess
import sys
import tempfile
import types

from absl import app, flags

flags.DEFINE_string('reference', '../shared/anchors/local_loss_train.py',
                    'Path of the reference training script.')
flags.DEFINE_string('model', 'vgg8b', 'The reference\'s --model.')
flags.DEFINE_list('losses', ['glob', 'pred', 'predsim', 'pred+bpf', 'predsim+bpf'],
                  'Losses as in benchmarks/local_vs_global.py: glob = --backprop, "+bpf" = --bio.')
flags.DEFINE_integer('batch_size', 128, 'Batch size.')
flags.DEFINE_integer('steps', 2, 'Training steps (batches of the one epoch).')
flags.DEFINE_bool('cuda', False, 'Run on the GPU and report torch.cuda.max_memory_allocated().')
flags.DEFINE_string('json', 'reference_memory.json', 'Where to write the results.')
flags.DEFINE_string('child', '', 'Internal: run one loss in this process.')
FLAGS = flags.FLAGS

SHAPES = {'CIFAR10': ((3, 32, 32), 10)}


def fake_torchvision(num_train: int, num_test: int):
  """A ``torchvision`` module whose datasets are random tensors and whose transforms are
  inert, registered in ``sys.modules``."""
  import torch

  class Random(torch.utils.data.Dataset):
    def __init__(self, root, train=True, download=False, transform=None, **kwargs):
      del root, download, transform, kwargs
      shape, classes = SHAPES['CIFAR10']
      size = num_train if train else num_test
      generator = torch.Generator().manual_seed(int(train))
      self.images = torch.randn((size, *shape), generator=generator)
      self.targets = torch.randint(0, classes, (size,), generator=generator)
      self.train_labels = self.targets

    def __len__(self):
      return len(self.targets)

    def __getitem__(self, i):
      return self.images[i], int(self.targets[i])

  class Transform:
    def __init__(self, *args, **kwargs):
      self.transforms = list(args[0]) if args and isinstance(args[0], list) else []

    def __call__(self, x):
      return x

  transforms = types.ModuleType('torchvision.transforms')
  for name in ('Compose', 'Normalize', 'RandomCrop', 'RandomHorizontalFlip', 'ToTensor',
               'CenterCrop', 'RandomResizedCrop', 'Resize'):
    setattr(transforms, name, Transform)
  datasets = types.ModuleType('torchvision.datasets')
  for name in ('MNIST', 'FashionMNIST', 'CIFAR10', 'CIFAR100', 'SVHN', 'STL10', 'ImageFolder'):
    setattr(datasets, name, Random)   # the script subclasses MNIST; only CIFAR10 is read
  torchvision = types.ModuleType('torchvision')
  torchvision.datasets, torchvision.transforms = datasets, transforms
  sys.modules.update({'torchvision': torchvision, 'torchvision.datasets': datasets,
                      'torchvision.transforms': transforms})


def reference_args(loss: str, save_dir: str) -> list[str]:
  name, _, bpf = loss.partition('+')
  args = ['--dataset', 'CIFAR10', '--model', FLAGS.model, '--batch-size', str(FLAGS.batch_size),
          '--epochs', '1', '--save-dir', save_dir,
          '--nonlin', 'leakyrelu' if 'sim' in name else 'relu']
  args += ['--backprop'] if name == 'glob' else ['--loss-sup', name]
  args += ['--bio'] if bpf else []
  return args + ([] if FLAGS.cuda else ['--no-cuda'])


def run_child(loss: str) -> None:
  import torch
  fake_torchvision(FLAGS.steps * FLAGS.batch_size, FLAGS.batch_size)
  before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  with tempfile.TemporaryDirectory() as save_dir:
    sys.argv = [FLAGS.reference, *reference_args(loss, save_dir)]
    runpy.run_path(FLAGS.reference, run_name='__main__')
  peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  result = {'peak_rss_MiB': peak_kib / 1024, 'rss_after_import_MiB': before_kib / 1024,
            'peak_rss_delta_MiB': (peak_kib - before_kib) / 1024}
  if FLAGS.cuda:
    result['cuda_max_allocated_MiB'] = torch.cuda.max_memory_allocated() / 2**20
  print('RESULT ' + json.dumps(result), flush=True)


def main(argv):
  del argv
  if FLAGS.child:
    run_child(FLAGS.child)
    return
  from common import report
  if not os.path.exists(FLAGS.reference):
    raise FileNotFoundError(f'no reference script at {FLAGS.reference!r}; pass --reference=PATH')
  rows = []
  for loss in FLAGS.losses:
    flags_now = [f'--{name}={getattr(FLAGS, name)}' for name in
                 ('reference', 'model', 'batch_size', 'steps', 'cuda')]
    result = subprocess.run([sys.executable, __file__, f'--child={loss}', *flags_now],
                            capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith('RESULT ')]
    if result.returncode or not lines:
      raise RuntimeError(f'the reference failed on {loss}:\n{result.stderr[-3000:]}')
    row = {'model': FLAGS.model, 'loss': loss, **json.loads(lines[-1][len('RESULT '):])}
    rows.append(row)
    print(row, flush=True)
  columns = ['model', 'loss', 'peak_rss_MiB', 'peak_rss_delta_MiB']
  report(f'reference PyTorch ({os.path.basename(FLAGS.reference)}), batch {FLAGS.batch_size}, '
         f'{FLAGS.steps} steps on random data', columns + (['cuda_max_allocated_MiB']
                                                           if FLAGS.cuda else []),
         rows, FLAGS.json, batch_size=FLAGS.batch_size, steps=FLAGS.steps)


if __name__ == '__main__':
  app.run(main)
