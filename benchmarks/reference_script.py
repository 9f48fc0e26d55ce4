"""The reference PyTorch ``train.py`` of Nøkland & Eidnes (github.com/anokland/local-loss),
loaded by path for the benchmarks that measure it against jaxlocal (``versus_reference.py``: its
step time; ``reference_memory.py``: its peak memory). The file is never copied into the project.

:func:`load_reference` executes it as ``../shared/anchors/README.md`` says: its source up to the
main training loop, with the block that builds its torchvision datasets and loaders replaced by
the input shape and loaders the caller gives (e.g. :class:`RandomBatches`, random batches
already on the device), and ``saved_variables`` replaced by ``saved_tensors`` (removed from
PyTorch since). Its own ``train(epoch, lr)`` and ``test(epoch)`` then run unmodified. Without
torchvision installed, a stand-in module supplies the names its top-level code mentions (the
dataset base class); the loaders are replaced either way.

No JAX here: ``reference_memory.py`` measures a process holding only torch and the reference.
"""

from __future__ import annotations

import sys
import time
import types

MAIN_LOOP = "''' The main training and testing loop '''"
DATA_START = "kwargs = {'num_workers'"
DATA_END = "print('No valid dataset is specified')"


class RandomBatches:
  """A loader for the reference: ``steps`` times one random batch already on the device;
  ``times`` holds the clock (``synchronize``-d) at every request for a batch and at the end,
  so consecutive differences are the reference's step times."""

  def __init__(self, images, labels, steps: int, synchronize=lambda: None):
    self.images, self.labels, self.steps, self.synchronize = images, labels, steps, synchronize
    self.dataset = range(steps * len(labels))  # train() and test() divide by len(dataset)
    self.times = []

  def __len__(self):
    return self.steps

  def __iter__(self):
    for _ in range(self.steps):
      self.synchronize()
      self.times.append(time.perf_counter())
      yield self.images, self.labels
    self.synchronize()
    self.times.append(time.perf_counter())


def require_torch(cuda: bool = False) -> None:
  """Exits with a message naming the fix where PyTorch (with CUDA, for ``cuda``) is missing: the
  reference is PyTorch code."""
  import importlib.util
  if importlib.util.find_spec('torch') is None:
    raise SystemExit('the reference train.py needs PyTorch, which is not installed: '
                     'pip install torch==2.13.0+cpu (a CUDA build for --cuda)')
  if cuda:
    import torch
    if not torch.cuda.is_available():
      raise SystemExit('--cuda: this PyTorch sees no CUDA device; drop --cuda or install a '
                       'CUDA build of torch')


def random_batches(batch_size: int, shape: tuple[int, int, int], steps: int, cuda: bool,
                   seed: int = 0) -> RandomBatches:
  """:class:`RandomBatches` of ``batch_size`` random images and labels for the reference's
  ``shape`` = (input_dim, input_ch, num_classes), on the GPU when ``cuda`` (the clock then
  synchronised with it)."""
  import torch  # noqa: PLC0415
  dim, channels, num_classes = shape
  generator = torch.Generator().manual_seed(seed)
  images = torch.randn(batch_size, channels, dim, dim, generator=generator)
  labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
  if cuda:
    images, labels = images.cuda(), labels.cuda()
  return RandomBatches(images, labels, steps, torch.cuda.synchronize if cuda else lambda: None)


def _torchvision_stand_in() -> dict:
  """sys.modules entries that let the reference's imports and class definitions run without
  torchvision (its datasets and transforms are never used once the loaders are replaced)."""
  try:
    import torchvision  # noqa: F401,PLC0415
    return {}
  except ImportError:
    pass
  datasets = types.ModuleType('torchvision.datasets')
  datasets.MNIST = type('MNIST', (), {})
  transforms = types.ModuleType('torchvision.transforms')
  root = types.ModuleType('torchvision')
  root.datasets, root.transforms = datasets, transforms
  return {'torchvision': root, 'torchvision.datasets': datasets,
          'torchvision.transforms': transforms}


def reference_source(path: str) -> str:
  """The reference's source up to its main loop, its data block replaced (module doc)."""
  with open(path) as f:
    source = f.read()
  for marker in (MAIN_LOOP, DATA_START, DATA_END):
    if marker not in source:
      raise SystemExit(f'{path} does not look like the reference train.py: {marker!r} not found; '
                       'pass --reference=<path of anokland/local-loss train.py>')
  start = source.index(DATA_START)
  end = source.index(DATA_END, start) + len(DATA_END)
  source = (source[:start]
            + 'input_dim, input_ch, num_classes = _BENCH_SHAPE\n'
            + 'train_loader, test_loader = _BENCH_LOADERS\n'
            + source[end:source.index(MAIN_LOOP)])
  return source.replace('saved_variables', 'saved_tensors')


def load_reference(path: str, argv: list[str], *, shape: tuple[int, int, int], train_loader,
                   test_loader=None) -> types.ModuleType:
  """The reference at ``path`` executed with command line ``argv`` (its flags), input
  ``shape`` = (input_dim, input_ch, num_classes) and the given loaders: the module, whose
  ``train(epoch, lr)`` and ``test(epoch)`` run its step and evaluation. It prints its model."""
  module = types.ModuleType('local_loss_reference')
  module.__file__ = path
  module._BENCH_SHAPE = shape
  module._BENCH_LOADERS = (train_loader, test_loader)
  code = compile(reference_source(path), path, 'exec')
  saved_argv, saved_modules = sys.argv, dict(sys.modules)
  sys.modules.update(_torchvision_stand_in())
  sys.argv = [path, *argv]
  try:
    exec(code, module.__dict__)  # noqa: S102
  finally:
    sys.argv = saved_argv
    for name in set(sys.modules) - set(saved_modules):
      if name.startswith('torchvision'):
        del sys.modules[name]
  return module
