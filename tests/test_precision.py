"""compute_dtype='bfloat16': bf16 layers, float32 parameters, optimiser states and losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlocal import train
from jaxlocal.blocks import make_learner
from jaxlocal.methods import associated
from jaxlocal.methods.local_error import network_blocks
from jaxlocal.optim import optimizer_from_config
from jaxlocal.precision import cast_floating, compute_dtype
from jaxlocal.recipes import associated_learning_config, local_error_config


def conv_learner(dtype):
  c = local_error_config('cifar10', 'vgg8b', 'vgg8b')
  c.model, c.num_hidden = 'vgg:8,M', 16
  blocks = network_blocks(c, num_classes=10, image_shape=(8, 8, 3))
  return make_learner(blocks, optimizer_from_config(c, 10), compute_dtype=dtype)


def batch():
  k1, k2 = jax.random.split(jax.random.key(0))
  return {'image': jax.random.normal(k1, (16, 8, 8, 3)),
          'label': jax.random.randint(k2, (16,), 0, 10)}


def dtypes(tree):
  return {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


def test_bfloat16_computes_in_bf16_and_keeps_float32_state():
  b = batch()
  learner = conv_learner(jnp.bfloat16)
  state = learner.init(jax.random.key(1), b['image'][:2])
  jaxpr = str(jax.make_jaxpr(learner.train_step)(state, b, jax.random.key(2)))
  assert 'conv_general_dilated' in jaxpr and 'bf16[16,8,8,8]' in jaxpr
  new, metrics = jax.jit(learner.train_step)(state, b, jax.random.key(2))
  assert dtypes(new.params) == dtypes(new.opt_state) == dtypes(new.batch_stats) == {np.dtype('float32')}
  assert metrics['loss'].dtype == jnp.float32 and np.isfinite(metrics['loss'])
  # close to the float32 step: the same update up to bf16 rounding of the activations
  reference, ref_metrics = jax.jit(conv_learner(None).train_step)(state, b, jax.random.key(2))
  assert abs(float(metrics['loss']) - float(ref_metrics['loss'])) < 0.05
  assert not jax.tree.all(jax.tree.map(lambda a, c: bool(jnp.all(a == c)), new.params,
                                       reference.params))


def test_associated_learning_in_bfloat16():
  c = associated_learning_config('mnist', 'mlp')
  c.associated.width, c.compute_dtype = 16, 'bfloat16'
  dataset = type('D', (), {'num_classes': 10})
  learner = associated.build(c, dataset, 4)
  x = jax.random.uniform(jax.random.key(0), (8, 8, 8, 1))
  state = learner.init(jax.random.key(1), x)
  new, metrics = jax.jit(learner.train_step)(state, {'image': x, 'label': jnp.arange(8)},
                                             jax.random.key(2))
  assert dtypes(new.params) == {np.dtype('float32')} and metrics['loss'].dtype == jnp.float32
  assert 'bf16' in str(jax.make_jaxpr(learner.train_step)(state, {'image': x,
                                                                  'label': jnp.arange(8)},
                                                         jax.random.key(2)))


def test_cast_floating_leaves_integers_and_keys():
  tree = {'w': jnp.ones(2), 'n': jnp.arange(2), 'k': jax.random.key(0)}
  cast = cast_floating(tree, jnp.bfloat16)
  assert cast['w'].dtype == jnp.bfloat16 and cast['n'].dtype == tree['n'].dtype


def test_unknown_compute_dtype_is_named(tmp_path):
  with pytest.raises(ValueError, match="unknown compute_dtype 'float16'"):
    compute_dtype('float16')
  c = local_error_config('mnist', 'mlp', 'mlp')
  c.dataset, c.compute_dtype = 'digits', 'fp8'
  with pytest.raises(ValueError, match="unknown compute_dtype 'fp8'"):
    train.train_and_evaluate(c, str(tmp_path))
