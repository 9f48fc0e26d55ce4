"""Difference target propagation (Lee et al. 2015) with pooling, as in Tang, Yang & Amit (2022).

Layers h_l = f_l(h_{l−1}; θ_l) for l = 1..L (h_0 = the input), inverses g_l(·; λ_l) from layer l
back to layer l−1 for l = 2..L, the top z = top(h_L; ω) and the loss ℒ(z). One step:

  top target   ĥ_L = h_L − η_t ∇_{h_L} ℒ
  targets      ĥ_{l−1} = h_{l−1} + (g_l(ĥ_l; λ_l) − g_l(h_l; λ_l))               l = L..2
  inverses     h̃ = h_{l−1} + σ ε, ε ~ N(0, I);  Δλ_l ∝ −∇_{λ_l} R[(g_l(f_l(h̃; θ_l); λ_l) − h̃)²]
  forwards     Δθ_l ∝ −∇_{θ_l} R[(f_l(sg(h_{l−1}); θ_l) − sg(ĥ_l))²]
  top          Δω ∝ −∇_ω ℒ(top(sg(h_L); ω))

(sg = stop_gradient.) No gradient crosses a layer: each parameter group gets the gradient of its
own loss with that loss's inputs and targets held constant, and the one gradient of ℒ with respect
to an activation, ∇_{h_L} ℒ, is local to the top. Every gradient of a step is taken at the
parameters the step starts from, so the targets use the inverses before this step's update
(Tang's order: targets, inverse step, forward step, on the same minibatch).

The reduction R is the elementwise mean (``nn.MSELoss``, as in Tang's SSL-DTP), for both losses.
Alternatives: Lee et al. take the batch mean of the sum over units (the elementwise mean times
the units per example); Meulemans et al. do that for the forward loss and scale the elementwise
mean of the inverse loss by 1/σ².
Under Adam the choice mostly rescales the effective learning rate; under SGD the elementwise mean
keeps a learning rate meaningful across layer sizes. ∇_{h_L} ℒ is taken as ``loss_fn`` reduces
the batch: for a batch mean (SSL-DTP's SimCLR loss) each example's step is η_t / B times the
gradient of its own loss, so η_t is tied to the batch size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxlocal.blocks import Learner, TrainState, optimizer_step

Apply = Callable[[object, jax.Array], jax.Array]


def targets(inverse_apply: Callable[[int, object, jax.Array], jax.Array],
            inverse_params: Sequence, hs: Sequence[jax.Array],
            top_target: jax.Array) -> list[jax.Array]:
  """[ĥ_1 … ĥ_L], ĥ_L = top_target, ĥ_{l−1} = h_{l−1} + (g_l(ĥ_l) − g_l(h_l)) for l = L..2.

  hs = [h_1 … h_L] (each (B, ...)); inverse_params = [λ_2 … λ_L]; inverse_apply(l, λ_l, h)
  applies g_l (l counted from 1), mapping h_l's shape to h_{l−1}'s. The difference is taken
  before it is added, so ĥ_l = h_l gives ĥ_{l−1} = h_{l−1} exactly. Every target is wrapped in
  stop_gradient: none carries a gradient to hs, the top target or the inverses.
  """
  if len(inverse_params) != len(hs) - 1:
    raise ValueError(f'need one inverse per layer above the first: {len(hs)} layers take '
                     f'{len(hs) - 1} inverse parameter sets (λ_2 … λ_L), got {len(inverse_params)}')
  if top_target.shape != hs[-1].shape:
    raise ValueError(f'the top target must have the shape of h_L {hs[-1].shape}, got '
                     f'{top_target.shape}')
  hats = [jax.lax.stop_gradient(top_target)]
  for l in range(len(hs), 1, -1):
    lam = inverse_params[l - 2]
    correction = inverse_apply(l, lam, hats[0]) - inverse_apply(l, lam, hs[l - 1])
    hats.insert(0, jax.lax.stop_gradient(hs[l - 2] + correction))
  return hats


def forward_loss(f_apply: Apply, params, h_prev: jax.Array, target: jax.Array) -> jax.Array:
  """R[(f_l(sg(h_{l−1}); θ_l) − sg(ĥ_l))²], R the elementwise mean: the loss of θ_l = params.

  f_apply(θ_l, h) applies f_l; h_prev = h_{l−1} (B, ...), target = ĥ_l shaped like f_l's output.
  At the current θ_l its value is the layer's target distance mean((h_l − ĥ_l)²).
  """
  h = f_apply(params, jax.lax.stop_gradient(h_prev))
  return jnp.mean(jnp.square(h - jax.lax.stop_gradient(target)))


def inverse_loss(f_apply: Apply, forward_params, g_apply: Apply, inverse_params,
                 h_prev: jax.Array, *, rng: jax.Array, noise_std: float) -> jax.Array:
  """R[(g_l(f_l(h̃; sg(θ_l)); λ_l) − h̃)²] with h̃ = sg(h_{l−1}) + σ ε, ε ~ N(0, I) from rng.

  The loss of λ_l = inverse_params (θ_l = forward_params is held constant); R is the elementwise
  mean. f_apply(θ_l, h) applies f_l, g_apply(λ_l, h) applies g_l; h_prev = h_{l−1} (B, ...).
  """
  noisy = (jax.lax.stop_gradient(h_prev)
           + noise_std * jax.random.normal(rng, h_prev.shape, h_prev.dtype))
  h = f_apply(jax.lax.stop_gradient(forward_params), noisy)
  return jnp.mean(jnp.square(g_apply(inverse_params, h) - noisy))


def _apply_forward(forwards: Sequence[nn.Module], params: dict, x: jax.Array) -> list[jax.Array]:
  """[h_1 … h_L], h_l = f_l(h_{l−1}; θ_l) from h_0 = x: every layer's features (e.g. for a probe).

  params is a DTP learner's ``state.params``; x (B, H, W, C).
  """
  hs = []
  for f, layer in zip(forwards, params['layers']):
    x = f.apply({'params': layer['forward']}, x)
    hs.append(x)
  return hs


def make_dtp_learner(forwards: Sequence[nn.Module], inverses: Sequence[nn.Module],
                     top: nn.Module, loss_fn, *,
                     forward_optimizer: optax.GradientTransformation,
                     inverse_optimizer: optax.GradientTransformation,
                     top_optimizer: optax.GradientTransformation,
                     target_step: float, noise_std: float) -> Learner:
  """The :class:`Learner` that trains f_1 … f_L, g_2 … g_L and the top by DTP (module docstring).

  Args:
    forwards: f_1 … f_L, Flax modules ``(h_{l−1}) -> h_l`` with parameters only (no batch
      statistics or rngs), e.g. :class:`jaxlocal.models.dtp.DTPForward`.
    inverses: g_2 … g_L, modules ``(h_l) -> h_{l−1}`` (checked at init), e.g. ``DTPInverse``.
    top: a module ``(h_L) -> z`` given h_L as f_L returns it (a (B, H, W, C) map for conv
      layers), so ĥ_L keeps h_L's shape; a head that needs a vector flattens inside, as
      :class:`jaxlocal.models.heads.EmbeddingHead` does. Trained by ∇_ω ℒ with h_L held constant.
    loss_fn: ``(z, batch) -> (scalar loss, metrics dict)``, the global loss ℒ; it must respect
      ``batch['mask']`` when present (eval metrics are means over unmasked examples).
    forward_optimizer, inverse_optimizer, top_optimizer: one optax transformation per group;
      every layer keeps its own state and takes its own update.
    target_step: η_t >= 0, the step of the top target (SSL-DTP: 0.5).
    noise_std: σ >= 0, the corruption of the inverse loss (SSL-DTP: 1.0).

  ``state.params = {'layers': ({'forward': θ_1, 'inverse': {}}, {'forward': θ_2, 'inverse': λ_2},
  …), 'top': ω}``; ``state.opt_state`` has the same layout with each group's optimiser state
  (layer 1's inverse entry is the state of an empty tree and never changes);
  ``state.batch_stats = ()``. Train metrics: ``loss`` (ℒ(z)) and loss_fn's metrics,
  ``layer<l>/target_distance`` (mean (ĥ_l − h_l)², l = 1..L) and ``layer<l>/reconstruction``
  (the inverse loss, l = 2..L). Eval metrics: ``loss`` and loss_fn's metrics on the forward pass.
  ``features(state, x)`` is [h_1 … h_L].
  """
  forwards, inverses = tuple(forwards), tuple(inverses)
  if not forwards:
    raise ValueError('DTP needs at least one forward layer')
  if len(inverses) != len(forwards) - 1:
    raise ValueError(f'need one inverse g_l per layer above the first: {len(forwards)} forward '
                     f'layers take {len(forwards) - 1} inverses (g_2 … g_L), got {len(inverses)}')
  if not target_step >= 0:
    raise ValueError(f'target_step (η_t) must be >= 0, got {target_step!r}')
  if not noise_std >= 0:
    raise ValueError(f'noise_std (σ) must be >= 0, got {noise_std!r}')

  def f_apply(l, params, h):
    return forwards[l - 1].apply({'params': params}, h)

  def g_apply(l, params, h):
    return inverses[l - 2].apply({'params': params}, h)

  def top_loss(top_params, h_top, batch):
    return loss_fn(top.apply({'params': top_params}, h_top), batch)

  def init(rng, x):
    layers, h_prev = [], x
    for l in range(1, len(forwards) + 1):
      k_forward, k_inverse = jax.random.split(jax.random.fold_in(rng, l))
      theta = forwards[l - 1].init(k_forward, h_prev)['params']
      h = f_apply(l, theta, h_prev)
      lam = {}
      if l >= 2:
        lam = inverses[l - 2].init(k_inverse, h)['params']
        back = g_apply(l, lam, h).shape
        if back != h_prev.shape:
          raise ValueError(f'inverse g_{l} maps h_{l} {h.shape} to {back}, but h_{l - 1} has '
                           f'shape {h_prev.shape}')
      layers.append({'forward': theta, 'inverse': lam})
      h_prev = h
    params = {'layers': tuple(layers),
              'top': top.init(jax.random.fold_in(rng, 0), h_prev)['params']}
    opt_state = {'layers': tuple({'forward': forward_optimizer.init(p['forward']),
                                  'inverse': inverse_optimizer.init(p['inverse'])}
                                 for p in layers),
                 'top': top_optimizer.init(params['top'])}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=(),
                      opt_state=opt_state)

  def train_step(state, batch, rng):
    layers, opt_layers = state.params['layers'], state.opt_state['layers']
    hs = _apply_forward(forwards, state.params, batch['image'])
    (loss, metrics), (top_grads, dloss_dh) = jax.value_and_grad(
        top_loss, argnums=(0, 1), has_aux=True)(state.params['top'], hs[-1], batch)
    hats = targets(g_apply, [p['inverse'] for p in layers[1:]], hs,
                   hs[-1] - target_step * dloss_dh)
    inputs = [batch['image'], *hs[:-1]]
    new_layers, new_opt = [], []
    for l in range(1, len(forwards) + 1):
      p, s = dict(layers[l - 1]), dict(opt_layers[l - 1])
      f_l = functools.partial(f_apply, l)
      if l >= 2:
        rec, grads = jax.value_and_grad(inverse_loss, argnums=3)(
            f_l, p['forward'], functools.partial(g_apply, l), p['inverse'], inputs[l - 1],
            rng=jax.random.fold_in(rng, l), noise_std=noise_std)
        metrics[f'layer{l}/reconstruction'] = rec
        p['inverse'], s['inverse'] = optimizer_step(inverse_optimizer, p['inverse'], grads,
                                                    s['inverse'])
      dist, grads = jax.value_and_grad(forward_loss, argnums=1)(
          f_l, p['forward'], inputs[l - 1], hats[l - 1])
      metrics[f'layer{l}/target_distance'] = dist
      p['forward'], s['forward'] = optimizer_step(forward_optimizer, p['forward'], grads,
                                                  s['forward'])
      new_layers.append(p)
      new_opt.append(s)
    top_params, top_state = optimizer_step(top_optimizer, state.params['top'], top_grads,
                                           state.opt_state['top'])
    metrics['loss'] = loss
    return state.replace(
        step=state.step + 1,
        params={'layers': tuple(new_layers), 'top': top_params},
        opt_state={'layers': tuple(new_opt), 'top': top_state}), metrics

  def eval_step(state, batch):
    hs = _apply_forward(forwards, state.params, batch['image'])
    loss, metrics = top_loss(state.params['top'], hs[-1], batch)
    return {**metrics, 'loss': loss}

  def features(state, x):
    return _apply_forward(forwards, state.params, x)

  return Learner(init, train_step, eval_step, features=features)
