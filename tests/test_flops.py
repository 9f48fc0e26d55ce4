"""The FLOP counter (jaxlocal/flops.py) against hand counts: a convolution, a matmul, a VGG8B
forward pass and a VGG8B predsim training step, and the peak table."""

import jax
import jax.numpy as jnp
import optax
import pytest
from jax import lax

from jaxlocal import flops
from jaxlocal.blocks import TrainState, init_blocks, make_learner
from jaxlocal.methods.local_error import network_blocks
from jaxlocal.models.convolution import conv
from jaxlocal.optim import optimizer_from_config
from jaxlocal.recipes import config_file

# VGG8B on a 32×32×3 image, per image, by hand: 2 · H · W · Cout · 9 · Cin per 3×3 conv
# (32², 32², 16², 16², 8², 4² after the pools), then fc1 (2·2·512 → 1024) and the output
# layer.
VGG8B_CONVS = [(32, 3, 128), (32, 128, 256), (16, 256, 256), (16, 256, 512), (8, 512, 512),
               (4, 512, 512)]
VGG8B_FORWARD = (sum(2 * s * s * cout * 9 * cin for s, cin, cout in VGG8B_CONVS)
                 + 2 * 2048 * 1024 + 2 * 1024 * 10)  # 1,898,729,472
# predsim's sim head on each conv block: a 3×3 C → C conv on the block's h (before pooling).
VGG8B_SIM_HEADS = sum(2 * s * s * cout * 9 * cout for s, _, cout in VGG8B_CONVS)


def f32(*shape):
  return jax.ShapeDtypeStruct(shape, jnp.float32)


def test_matmul_counts_two_flops_per_multiply_add():
  assert flops.step_flops(jnp.matmul, f32(5, 7), f32(7, 3)) == 2 * 5 * 7 * 3
  batched = lambda a, b: jnp.einsum('bij,bjk->bik', a, b)
  assert flops.step_flops(jax.jit(batched), f32(4, 5, 7), f32(4, 7, 3)) == 4 * 2 * 5 * 7 * 3
  # forward + both gradients: three products of the same size; without the loss's value the
  # forward product is dead (a sum's gradient does not need it) and counts nothing
  loss = lambda a, b: jnp.sum(a @ b)
  both = jax.value_and_grad(loss, (0, 1))
  assert flops.step_flops(both, f32(5, 7), f32(7, 3)) == 3 * 2 * 5 * 7 * 3
  assert flops.step_flops(jax.grad(loss, (0, 1)), f32(5, 7), f32(7, 3)) == 2 * 2 * 5 * 7 * 3
  # dead code counts nothing; a scan body once per step; a cond its costliest branch
  assert flops.step_flops(lambda a, b: (a @ b, a)[1], f32(5, 7), f32(7, 3)) == 0
  looped = lambda a, b: lax.map(lambda x: x @ b, a)
  assert flops.step_flops(looped, f32(6, 5, 7), f32(7, 3)) == 6 * 2 * 5 * 7 * 3
  branches = lambda p, a, b: lax.cond(p, lambda: a @ b, lambda: a[:, :3] * 2.0)
  assert flops.step_flops(branches, True, f32(5, 7), f32(7, 3)) == 2 * 5 * 7 * 3


@pytest.mark.parametrize('stride', [1, 2])
def test_convolution_forward_and_backward(stride):
  x, kernel = f32(2, 8, 8, 3), f32(3, 3, 3, 4)
  out = 8 // stride
  forward = 2 * 2 * out * out * 4 * (3 * 3 * 3)  # 2 · |y| · window · Cin
  assert flops.step_flops(lambda x, k: conv(x, k, (stride, stride)), x, kernel) == forward
  # conv's custom VJP: XLA's input gradient, the kernel gradient by XLA (GPU) or by one matmul
  # per kernel row in a scan (CPU); the recomputed forward inside its jax.vjp is dead code
  loss = lambda x, k: jnp.sum(conv(x, k, (stride, stride)) ** 2)
  both = flops.step_flops(jax.grad(loss, (0, 1)), x, kernel)
  kernel_only = flops.step_flops(jax.grad(loss, 1), x, kernel)
  if stride == 1:
    assert (both, kernel_only) == (3 * forward, 2 * forward)
  else:  # the input gradient is an input-dilated conv over the zeros of the strided output
    assert kernel_only == 2 * forward and both == kernel_only + 2 * 2 * 8 * 8 * 3 * (3 * 3 * 4)


def vgg8b(loss='predsim'):
  config = config_file('cifar10', 'vgg8b')
  config.loss = loss
  return config, network_blocks(config, num_classes=10, image_shape=(32, 32, 3))


def test_vgg8b_forward_matches_the_hand_count():
  _, blocks = vgg8b()
  x = f32(2, 32, 32, 3)
  params, stats = jax.eval_shape(lambda x: init_blocks(blocks, jax.random.key(0), x), x)
  features = make_learner(blocks, optax.sgd(0.1)).features
  counted = flops.step_flops(
      lambda p, s, x: features(TrainState(jnp.zeros((), jnp.int32), p, s, ()), x), params, stats,
      x)
  assert counted == 2 * VGG8B_FORWARD


def test_vgg8b_predsim_step_matches_the_hand_count():
  """Local learning: each block's forward and kernel gradient (2×; its input is stop-gradiented,
  so no input gradient), each sim head's forward, kernel and input gradients (3×); the pred
  heads' and fc sim head's small products make up the rest (< 0.1 %)."""
  config, blocks = vgg8b()
  learner = make_learner(blocks, optimizer_from_config(config, 10), detach=True)
  batch = {'image': f32(2, 32, 32, 3), 'label': jax.ShapeDtypeStruct((2,), jnp.int32)}
  state = jax.eval_shape(learner.init, jax.random.key(0), batch['image'])
  counted = flops.step_flops(learner.train_step, state, batch, jax.random.key(1)) / 2
  hand = 2 * VGG8B_FORWARD + 3 * VGG8B_SIM_HEADS  # 13.99 GFLOP per image
  assert hand <= counted < 1.001 * hand


def test_peaks_by_device_kind_and_override():
  assert flops.peak_tflops('bfloat16', 'NVIDIA H200') == 989.0
  assert flops.peak_tflops('float32', 'NVIDIA H100 80GB HBM3') == 495.0
  assert flops.peak_tflops('float32', 'NVIDIA A100-SXM4-80GB') == 156.0
  assert flops.peak_tflops('bfloat16', 'cpu') is None
  assert flops.peak_tflops('bfloat16', 'cpu', override=2.5) == 2.5
  with pytest.raises(ValueError, match='float16'):
    flops.peak_tflops('float16', 'NVIDIA H200')
