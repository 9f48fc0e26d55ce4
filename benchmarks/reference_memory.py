"""Peak memory of the reference PyTorch implementation (``local_loss_train.py`` of Nøkland &
Eidnes) training the same networks, for comparison with jaxlocal's compiled step sizes
(``benchmarks/local_vs_global.py``, ``benchmarks/max_batch.py``).

Each loss runs in its own process, without JAX: the reference script is executed by path
(never copied) as the shared anchors' README says (``benchmarks/reference_script.py``: its
torchvision loaders replaced by random CIFAR-shaped batches, no download). Its own ``train``
runs ``--steps`` batches (one epoch) and its ``test`` one batch. On CPU the figure is the
process's peak resident set size (``ru_maxrss``) minus that after importing torch: parameters,
Adam state, activations and the allocator's caches; on a GPU (``--cuda``) it is
``torch.cuda.max_memory_allocated()``.

  python benchmarks/reference_memory.py --reference=../shared/anchors/local_loss_train.py
  python benchmarks/reference_memory.py --losses=pred,glob --batch_size=32 --steps=2
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

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

CIFAR10_SHAPE = (32, 3, 10)  # the reference's input_dim, input_ch, num_classes


def reference_args(loss: str) -> list[str]:
  name, _, bpf = loss.partition('+')
  args = ['--dataset', 'CIFAR10', '--model', FLAGS.model, '--batch-size', str(FLAGS.batch_size),
          '--nonlin', 'leakyrelu' if 'sim' in name else 'relu']
  args += ['--backprop'] if name == 'glob' else ['--loss-sup', name]
  args += ['--bio'] if bpf else []
  return args + ([] if FLAGS.cuda else ['--no-cuda'])


def run_child(loss: str) -> None:
  import torch
  from reference_script import load_reference, random_batches
  before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  train = random_batches(FLAGS.batch_size, CIFAR10_SHAPE, FLAGS.steps, FLAGS.cuda)
  test = random_batches(FLAGS.batch_size, CIFAR10_SHAPE, 1, FLAGS.cuda, seed=1)
  reference = load_reference(FLAGS.reference, reference_args(loss), shape=CIFAR10_SHAPE,
                             train_loader=train, test_loader=test)
  reference.train(1, reference.args.lr)
  reference.test(1)
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
  from reference_script import require_torch
  if not os.path.exists(FLAGS.reference):
    raise SystemExit(f'no reference script at {FLAGS.reference!r}; pass --reference=PATH')
  require_torch(FLAGS.cuda)
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
