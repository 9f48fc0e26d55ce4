"""Associated Learning: gradient routing, the inverse-path inference, a short run that learns."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlocal import experiment
from jaxlocal import train
from jaxlocal.config_lib import associated_config
from jaxlocal.methods.associated import make_associated_learner
from jaxlocal.models.associated import Bridge, SigmoidDense, apply, forward_modules
from test_configs import load_config_file

WIDTH, CLASSES = 8, 4


def small_net(model='mlp'):
  forwards = forward_modules(model, WIDTH)
  learner, predict = make_associated_learner(forwards, WIDTH, CLASSES, optax.sgd(0.1),
                                             optax.sgd(0.2))
  shape = (6, 8, 8, 1)
  x = jax.random.normal(jax.random.key(0), shape)
  batch = {'image': x, 'label': jnp.arange(6) % CLASSES}
  return learner, predict, learner.init(jax.random.key(1), x), batch


class _State:
  """Just enough of a TrainState for eval_step, so a loss can be differentiated in params."""

  def __init__(self, params):
    self.params = params
    self.batch_stats = ({},) * len(params)


def nonzero_parts(grads):
  """{(block, part)} whose gradient is not all zero."""
  return {(i, part) for i, block in enumerate(grads) for part, g in block.items()
          if any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree.leaves(g))}


@pytest.mark.parametrize('model', ['mlp', 'cnn'])
def test_each_loss_reaches_only_its_own_block_and_parts(model):
  learner, _, state, batch = small_net(model)
  depth = len(state.params)
  for i in range(depth):
    for name, parts in (('assoc_loss', {'f', 'b'}), ('ae_loss', {'g', 'h'})):
      grads = jax.grad(lambda p: learner.eval_step(_State(p), batch)[f'block{i + 1}/{name}'])(
          state.params)
      assert nonzero_parts(grads) == {(i, part) for part in parts}, (i, name)


def test_one_step_moves_every_part_with_its_group_learning_rate():
  learner, _, state, batch = small_net()
  new, metrics = jax.jit(learner.train_step)(state, batch, jax.random.key(0))
  assert set(metrics) >= {'loss', 'block1/assoc_loss', 'block2/ae_loss'}
  grads = jax.grad(lambda p: sum(v for k, v in learner.eval_step(_State(p), batch).items()
                                 if k.endswith('_loss') and k.startswith('block')))(state.params)
  for i in range(len(state.params)):
    for part, lr in (('f', 0.1), ('b', 0.1), ('g', 0.2), ('h', 0.2)):
      moved = jax.tree.map(lambda a, b: a - b, new.params[i][part], state.params[i][part])
      expected = jax.tree.map(lambda g: -lr * g, grads[i][part])
      jax.tree.map(lambda m, e: np.testing.assert_allclose(m, e, atol=1e-6), moved, expected)


def test_inference_is_the_inverse_path_composition():
  learner, predict, state, batch = small_net()
  p = state.params
  f = forward_modules('mlp', WIDTH)
  s = apply(f[1], p[1]['f'], apply(f[0], p[0]['f'], batch['image']))
  t = apply(Bridge(WIDTH), p[1]['b'], s)
  expected = apply(SigmoidDense(CLASSES), p[0]['h'], apply(SigmoidDense(WIDTH), p[1]['h'], t))
  np.testing.assert_allclose(predict(state, batch["image"], 2), expected, rtol=1e-6)
  short = apply(SigmoidDense(CLASSES), p[0]['h'],
                apply(Bridge(WIDTH), p[0]['b'], apply(f[0], p[0]['f'], batch['image'])))
  np.testing.assert_allclose(predict(state, batch["image"], 1), short, rtol=1e-6)
  metrics = learner.eval_step(state, {**batch, 'mask': jnp.ones(6)})
  assert float(metrics['accuracy']) == float(metrics['depth2/accuracy'])
  assert 'depth1/accuracy' in metrics


def test_short_mnist_run_of_mlp_al_learns(tmp_path, shared_data):
  config = load_config_file('al_mnist', 'mlp')
  config.update(data_dir=str(shared_data), train_examples=4000, num_epochs=2,
                learning_rate=1e-3, progress_bar=False)
  config.associated.width = 256
  final = experiment.train_and_evaluate(config, str(tmp_path))
  # 250 steps: AL's sigmoid targets move early on, so the inverse path lags the shortcut
  # (measured 0.53 full depth, 0.78 from depth 1); chance is 0.1
  assert final['test_accuracy'] > 0.4
  assert final['test/depth1/accuracy'] > 0.6
  ratios = json.loads((tmp_path / 'metafeatures.json').read_text())
  assert set(ratios) == {'block1', 'block2'}
  assert all(r['ratio'] > 0 and r['intra'] > 0 for r in ratios.values())


@pytest.mark.parametrize('field, value, message', [
    ('model', 'resnet', "unknown Associated Learning model 'resnet'"),
    ('learning_rate', 0.0, 'learning_rate > 0'),
])
def test_bad_associated_config(tmp_path, field, value, message):
  config = associated_config()
  config.dataset = 'digits'
  config[field] = value
  with pytest.raises(ValueError, match=message):
    experiment.train_and_evaluate(config, str(tmp_path))


@pytest.mark.parametrize('row, widths', [
    ('mlp_bp', [1024, 1024, 5120, 1024, 1024, 10]),
    ('cnn_bp', [32, 32, 32, 32, 64, 64, 64, 64, 1280, 256, 256, 256, 256, 10]),
])
def test_backprop_baseline_is_the_inference_path(row, widths):
  from jaxlocal import methods
  from test_configs import synthetic
  config = load_config_file('al_mnist', row)
  learner = methods.get_method('associated').build(config, synthetic(config), steps_per_epoch=1)
  state = jax.eval_shape(learner.init, jax.random.key(0), jnp.zeros((2, 28, 28, 1)))
  kernels = [leaf.shape[-1] for path, leaf in jax.tree_util.tree_leaves_with_path(state.params)
             if path[-1].key == 'kernel']
  assert kernels == widths
  al = methods.get_method('associated').build(load_config_file('al_mnist', row[:3]),
                                              synthetic(config), steps_per_epoch=1)
  al_state = jax.eval_shape(al.init, jax.random.key(0), jnp.zeros((2, 28, 28, 1)))
  prediction_path = [p for i, block in enumerate(al_state.params) for part, p in block.items()
                     if part in ('f', 'h') or (part == 'b' and i == len(al_state.params) - 1)]
  count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  assert count(prediction_path) == count(state.params)


def test_tsne_of_an_al_and_a_bp_run_side_by_side(tmp_path):
  from jaxlocal.tools.tsne import tsne_of_runs
  for row in ('mlp', 'mlp_bp'):
    config = load_config_file('al_mnist', row)
    config.update(dataset='digits', num_epochs=1, learning_rate=1e-3, progress_bar=False)
    config.associated.width = 32
    experiment.train_and_evaluate(config, str(tmp_path / row))
  out = tmp_path / 'tsne.png'
  tsne_of_runs([str(tmp_path / 'mlp'), str(tmp_path / 'mlp_bp')], block=2, examples=150,
               out=str(out))
  assert out.stat().st_size > 0
  with pytest.raises(ValueError, match='has blocks 1..2'):
    tsne_of_runs([str(tmp_path / 'mlp')], block=3, examples=150, out=str(out))

  # the metafeatures of a run, recomputed from its last checkpoint, are those it wrote at its end
  from jaxlocal.tools.metafeatures import write_metafeatures
  written = tmp_path / 'mlp' / 'metafeatures.json'
  at_end = json.loads(written.read_text())
  written.unlink()
  write_metafeatures(str(tmp_path / 'mlp'))
  recomputed = json.loads(written.read_text())
  for block, values in at_end.items():
    for name, value in values.items():
      assert recomputed[block][name] == pytest.approx(value, rel=1e-5), (block, name)
  lines = [json.loads(l) for l in (tmp_path / 'mlp' / 'metrics.jsonl').read_text().splitlines()]
  line, = [r for r in lines if r.get('evaluator') == 'metafeatures']   # replaced, not added
  assert line['epoch'] == 1 and line['block2/ratio'] == recomputed['block2']['ratio']


def test_per_image_standardisation_is_the_first_step_of_f1():
  from jaxlocal.models.associated import per_image_standardize
  x = jax.random.uniform(jax.random.key(0), (3, 4, 4, 3)) * 5 + 2
  z = np.asarray(per_image_standardize(x)).reshape(3, -1)
  np.testing.assert_allclose(z.mean(1), 0, atol=1e-5)
  np.testing.assert_allclose(z.std(1), 1, rtol=1e-4)
  f = forward_modules('cnn', WIDTH, standardize_input=True)[0]
  params = f.init(jax.random.key(1), x)['params']
  np.testing.assert_allclose(apply(f, params, 3 * x + 7), apply(f, params, x), atol=1e-4)


def test_unknown_al_rows_name_the_choices():
  for row in ('vgg', 'mlp_xx', 'resnet20'):
    with pytest.raises(ValueError, match=r"unknown row .* for configs/al_mnist.py; choose one of \['cnn', 'mlp'\]"):
      load_config_file('al_mnist', row)


def test_resnet_al_keeps_batchnorm_statistics_per_block():
  """ResNet_20_AL: f_1 is the stem, f_2..f_4 the stages (16, 32 s2, 64 s2 channels, 3 basic
  blocks each); training updates each block's running statistics, evaluation uses them."""
  forwards = forward_modules('resnet20', 8)
  assert [f.channels for f in forwards] == [16, 16, 32, 64]
  assert [f.num_blocks for f in forwards] == [0, 3, 3, 3]
  learner, predict = make_associated_learner(forwards, 8, CLASSES, optax.adam(1e-3),
                                             optax.adam(2e-3))
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  batch = {'image': x, 'label': jnp.arange(4) % CLASSES}
  state = learner.init(jax.random.key(1), x)
  assert all(stats for stats in state.batch_stats)
  new, metrics = jax.jit(learner.train_step)(state, batch, jax.random.key(2))
  assert np.isfinite(float(metrics['loss']))
  for old, updated in zip(state.batch_stats, new.batch_stats):
    assert not jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), old, updated))
  assert predict(new, x, 4).shape == (4, CLASSES)
  s = predict(new, x, 1)  # shortcut inference from the stem
  assert s.shape == (4, CLASSES) and np.all((s > 0) & (s < 1))
