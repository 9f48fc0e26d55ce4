"""What a run shows while it trains: progress lines in a log file, and learning curves that
name the run and show a single epoch."""

import io

import matplotlib.figure
import pytest

from jaxlocal import progress
from jaxlocal.plots import plot_learning_curves


def test_progress_lines_every_few_percent_when_not_a_terminal():
  stream = io.StringIO()
  bar = progress.LineProgress(total=1000, desc='epoch 3/20', every_percent=25, min_seconds=0,
                              stream=stream)
  for _ in range(10):
    bar.update(100)
  lines = stream.getvalue().splitlines()
  assert [line.split(' (')[0] for line in lines] == [
      'epoch 3/20: 30%', 'epoch 3/20: 50%', 'epoch 3/20: 80%']  # none at 100 %: the epoch line
  assert '(300/1,000 img, ' in lines[0] and lines[0].endswith(' img/s)')


def test_progress_lines_are_rate_limited():
  stream = io.StringIO()
  bar = progress.LineProgress(total=100, desc='e', every_percent=5, min_seconds=3600,
                              stream=stream)
  for _ in range(99):
    bar.update(1)
  assert stream.getvalue() == ''


def test_epoch_progress_is_lines_for_a_file_and_silent_when_disabled(monkeypatch):
  monkeypatch.setattr('sys.stdout', io.StringIO())
  assert isinstance(progress.epoch_progress(10, 'e'), progress.LineProgress)
  assert not isinstance(progress.epoch_progress(10, 'e', enabled=False), progress.LineProgress)


@pytest.fixture
def saved_figures(monkeypatch):
  figures = []
  original = matplotlib.figure.Figure.savefig

  def savefig(self, *args, **kwargs):
    figures.append(self)
    return original(self, *args, **kwargs)

  monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', savefig)
  return figures


def test_learning_curves_name_the_run_and_plot_like_with_like(tmp_path, saved_figures):
  record = {'epoch': 1, 'train_loss': 1.5, 'test_loss': 1.4, 'train_xent': 0.9,
            'test_xent': 0.8, 'train_accuracy': 0.7, 'test_accuracy': 0.75,
            'train/conv1/loss': 0.7, 'test/conv1/loss': 0.6, 'train/output/loss': 0.8,
            'test/output/loss': 0.8, 'test/conv1/accuracy': 0.6, 'test/output/accuracy': 0.75}
  path = tmp_path / 'curves.png'
  plot_learning_curves([record], str(path), title='digits · local_error: vgg · predsim — w')
  assert path.stat().st_size > 0
  (figure,) = saved_figures
  assert figure._suptitle.get_text() == 'digits · local_error: vgg · predsim — w'
  network, blocks, accuracy = figure.axes
  lines = {line.get_label(): line for line in network.get_lines()}
  assert set(lines) == {'train: summed local loss', 'test: summed local loss',
                        'train: output cross-entropy', 'test: output cross-entropy'}
  assert lines['train: summed local loss'].get_linestyle() == '--'
  assert lines['test: summed local loss'].get_linestyle() == '-'
  assert len(blocks.get_lines()) == 4  # conv1 and output, train and test
  for axes in figure.axes:  # one epoch is a visible point, not an invisible line
    assert all(line.get_marker() == 'o' for line in axes.get_lines())
  assert {line.get_label() for line in accuracy.get_lines()} >= {
      'conv1', 'network (train)', 'network (test)'}
