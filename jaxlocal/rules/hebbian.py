"""Krotov & Hopfield (2019), "Unsupervised learning by competing hidden units".

Explicit updates from the paper's equations, no autodiff. Examples are rows: a minibatch ``v`` is
(B, N), the weights ``W`` are (K, N), one row per hidden unit. ``<W_μ, v>`` is the paper's
p-inner product ``Σ_i sign(W_μi) |W_μi|^(p-1) v_i`` (metric g_ij = |W_i|^(p-2) δ_ij).

Two versions of one learning step:

* :func:`ranking_update`, the fast approximation (§3) in the form of the reference notebook's
  minibatch update: g = 1 for each example's strongest current, −Δ for its k-th strongest, the
  plasticity rule (Eq. 2, R = 1) summed over the minibatch, scaled so that its largest entry is
  the learning rate.
* :func:`exact_update`, the biological version (§2.2): the steady state of the
  global-inhibition dynamics (Eq. 4) gives the activities h, and g(h) = 1 for h ≥ h*, −Δ for
  0 < h < h*, 0 for h ≤ 0.

Hyperparameters are static Python numbers, checked when a function is traced; only the learning
rate may also be an array (e.g. :func:`annealed_lr` of a traced epoch).
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


class CollapseError(FloatingPointError):
  """The weights became NaN/inf, or their rows collapsed to ~0."""


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise ValueError(message)


def _check_p(p: float) -> None:
  _require(p >= 2, f'p (the Lebesgue norm of the weights) must be >= 2, got {p!r}: the rule\'s '
           'fixed points lie on the unit p-sphere for p >= 2 (paper §2)')


def _check_delta(delta: float) -> None:
  _require(delta >= 0, f'delta (the anti-Hebbian strength Δ) must be >= 0, got {delta!r}')


def _abs_power(x: jax.Array, exponent: float) -> jax.Array:
  """|x|^exponent; an integer exponent becomes repeated multiplication instead of exp∘log."""
  exponent = float(exponent)
  return jnp.abs(x) ** (int(exponent) if exponent.is_integer() else exponent)


def init_weights(key: jax.Array, num_hidden: int, num_inputs: int, *, mean: float = 0.0,
                 std: float = 1.0, dtype=jnp.float32) -> jax.Array:
  """W (num_hidden, num_inputs) ~ Normal(mean, std²); the paper starts from a standard normal."""
  _require(num_hidden >= 1 and num_inputs >= 1,
           f'need num_hidden >= 1 and num_inputs >= 1, got {num_hidden!r} and {num_inputs!r}')
  _require(std > 0, f'std must be > 0, got {std!r}')
  return mean + std * jax.random.normal(key, (num_hidden, num_inputs), dtype)


def currents(W: jax.Array, v: jax.Array, p: float) -> jax.Array:
  """I (B, K), I[b, μ] = <W_μ, v_b> = Σ_i sign(W_μi) |W_μi|^(p-1) v_bi: the currents of Eq. 4."""
  _check_p(p)
  signed_power = W if p == 2 else jnp.sign(W) * _abs_power(W, p - 1)
  return v @ signed_power.T


def ranking_activation(I: jax.Array, k: int, delta: float) -> jax.Array:
  """g (B, K): 1 at the largest current of each row of I (B, K), −delta at its k-th, else 0 (§3)."""
  num_units = I.shape[-1]
  _require(isinstance(k, numbers.Integral) and 2 <= k <= num_units,
           f'k (the rank of the anti-Hebbian unit) must be an int in [2, {num_units}] (the '
           f'number of hidden units), got {k!r}')
  _check_delta(delta)
  # Without the barrier XLA fuses the two column slices into the one-hots and turns top_k into
  # a full sort of I (about 100x slower on CPU).
  ranked = jax.lax.optimization_barrier(jax.lax.top_k(I, k)[1])
  return (jax.nn.one_hot(ranked[:, 0], num_units, dtype=I.dtype)
          - delta * jax.nn.one_hot(ranked[:, k - 1], num_units, dtype=I.dtype))


def plasticity(W: jax.Array, v: jax.Array, g: jax.Array, I: jax.Array) -> jax.Array:
  """ΔW (K, N) = Σ_b g[b, μ] (v_b − I[b, μ] W_μ): Eq. 2 with R = 1, summed over the minibatch.

  W (K, N), v (B, N), g and I (B, K); computed as ``g.T @ v − (Σ_b g ⊙ I)[:, None] ⊙ W``.
  """
  return g.T @ v - jnp.sum(g * I, axis=0)[:, None] * W


def normalise_update(dW: jax.Array, prec: float) -> jax.Array:
  """dW / max(max |dW|, prec): the largest entry of the step becomes ±1 (the notebook's scaling)."""
  _require(prec > 0, f'prec (the floor of the update normaliser) must be > 0, got {prec!r}')
  return dW / jnp.maximum(jnp.max(jnp.abs(dW)), prec)


def sphere_deviation(W: jax.Array, p: float) -> jax.Array:
  """mean_μ |Σ_i |W_μi|^p − 1|: distance of the rows of W (K, N) from the unit p-sphere."""
  _check_p(p)
  return jnp.mean(jnp.abs(jnp.sum(_abs_power(W, p), axis=1) - 1))


def _apply(W, v, g, I, lr, p, prec) -> tuple[jax.Array, dict]:
  """W + lr · normalise_update(plasticity(W, v, g, I)), and the step's metrics."""
  _require(not isinstance(lr, (int, float)) or lr >= 0, f'lr must be >= 0, got {lr!r}')
  dW = plasticity(W, v, g, I)
  largest = jnp.max(jnp.abs(dW))
  new_W = W + lr * normalise_update(dW, prec)
  metrics = {'max_update': lr * largest / jnp.maximum(largest, prec),
             'active_units': jnp.sum(jnp.any(g != 0, axis=0)),
             'sphere_deviation': sphere_deviation(new_W, p)}
  return new_W, metrics


def ranking_update(W: jax.Array, v: jax.Array, *, lr, p: float, k: int, delta: float,
                   prec: float = 1e-30) -> tuple[jax.Array, dict]:
  """One minibatch step of the fast approximation (§3; the reference notebook's update).

  W (K, N), v (B, N). Returns the new W and metrics: ``max_update`` (the largest weight change,
  lr whenever anything changed), ``active_units`` (units with a nonzero g in the batch) and
  ``sphere_deviation`` of the new W.
  """
  I = currents(W, v, p)
  return _apply(W, v, ranking_activation(I, k, delta), I, lr, p, prec)


def steady_state(I: jax.Array, *, w_inh: float, tol: float = 1e-6,
                 max_iter: int = 1000) -> tuple[jax.Array, jax.Array]:
  """Steady state h (B, K) of Eq. 4, τ dh_μ/dt = I_μ − w_inh Σ_{ν≠μ} r(h_ν) − h_μ, r = ReLU.

  I (B, K). With the total rate s = Σ_ν r(h_ν), a steady state satisfies
  h_μ = I_μ − w_inh (s − r(h_μ)), whose only solution for 0 <= w_inh < 1 is
  h_μ(s) = c_μ / (1 − w_inh) if c_μ = I_μ − w_inh s > 0, else c_μ. What remains is the scalar
  equation φ(s) = s − Σ_μ r(h_μ(s)) = 0 per example. φ is increasing, concave and piecewise
  linear, so Newton's method from s = 0 (where φ <= 0) climbs monotonically to the root; its step
  is s ← Σ_{μ∈A} I_μ / (1 − w_inh + w_inh |A|), A the units with h_μ(s) > 0, and A shrinks at
  every step until it stops changing, at which point s and h are exact. So it ends within K + 2
  steps however strong the inhibition (a plain Jacobi iteration of Eq. 4 oscillates once
  w_inh (K − 1) > 1). w_inh >= 1 is refused: the steady state is then not unique (several
  winner-take-all states coexist, and which one the dynamics reaches depends on the start).

  Runs inside one ``lax.while_loop`` until max |h_new − h| < tol over the batch, or max_iter
  steps. Returns (h (B, K), the number of steps taken (int32 scalar)).
  """
  _require(0 <= w_inh < 1, f'w_inh must be in [0, 1), got {w_inh!r}: for w_inh >= 1 the steady '
           'state of Eq. 4 is not unique')
  _require(tol > 0, f'tol must be > 0, got {tol!r}')
  _require(isinstance(max_iter, numbers.Integral) and max_iter >= 1,
           f'max_iter must be an int >= 1, got {max_iter!r}')

  def activities(s):
    drive = I - w_inh * s[:, None]
    return jnp.where(drive > 0, drive / (1 - w_inh), drive)

  def newton_step(state):
    _, h, _, steps = state
    active = h > 0
    s = (jnp.sum(jnp.where(active, I, 0), axis=1)
         / (1 - w_inh + w_inh * jnp.sum(active, axis=1, dtype=I.dtype)))
    new_h = activities(s)
    return s, new_h, jnp.max(jnp.abs(new_h - h)), steps + 1

  def unfinished(state):
    _, _, change, steps = state
    return (change >= tol) & (steps < max_iter)

  s0 = jnp.zeros(I.shape[:1], I.dtype)
  start = (s0, activities(s0), jnp.array(jnp.inf, I.dtype), jnp.array(0, jnp.int32))
  _, h, _, steps = jax.lax.while_loop(unfinished, newton_step, start)
  return h, steps


def exact_activation(h: jax.Array, h_star: float, delta: float) -> jax.Array:
  """g(h), shaped like h: 1 where h >= h*, −delta where 0 < h < h*, 0 where h <= 0 (§2.2)."""
  _require(h_star > 0, f'h_star (the Hebbian threshold h*) must be > 0, got {h_star!r}')
  _check_delta(delta)
  return jnp.where(h >= h_star, 1.0, jnp.where(h > 0, -delta, 0.0)).astype(h.dtype)


def exact_update(W: jax.Array, v: jax.Array, *, lr, p: float, delta: float, w_inh: float,
                 h_star: float, prec: float = 1e-30, tol: float = 1e-6,
                 max_iter: int = 1000) -> tuple[jax.Array, dict]:
  """One minibatch step of the biological version (§2.2): Eq. 4's steady state decides g.

  W (K, N), v (B, N). h = steady_state(currents), g = exact_activation(h), then the same
  plasticity and scaling as :func:`ranking_update`. Metrics as there, plus ``solver_iterations``.
  """
  I = currents(W, v, p)
  h, iterations = steady_state(I, w_inh=w_inh, tol=tol, max_iter=max_iter)
  new_W, metrics = _apply(W, v, exact_activation(h, h_star, delta), I, lr, p, prec)
  return new_W, {**metrics, 'solver_iterations': iterations}


def annealed_lr(lr0, epoch, num_epochs: int):
  """lr0 · (1 − epoch / num_epochs) for the 0-based epoch: linear to 0, once per epoch (App. B)."""
  _require(isinstance(num_epochs, numbers.Integral) and num_epochs >= 1,
           f'num_epochs must be an int >= 1, got {num_epochs!r}')
  _require(not isinstance(epoch, (int, float)) or 0 <= epoch <= num_epochs,
           f'epoch must be in [0, num_epochs={num_epochs}], got {epoch!r}')
  return lr0 * (1 - epoch / num_epochs)


def check_weights(W, p: float) -> None:
  """Host-side guard on W (K, N): raises :class:`CollapseError` if it is not finite or collapsed."""
  W = np.asarray(W, dtype=np.float64)
  broken = ~np.all(np.isfinite(W), axis=1)
  if broken.any():
    raise CollapseError(
        f'{int(broken.sum())} of {W.shape[0]} weight rows contain NaN or inf. Likely cause: '
        'non-finite or unscaled inputs, or a learning rate or p so large that |W|^(p-1) '
        'overflows. Check that the inputs are finite and in [0, 1], lower lr or p, and restart '
        'from the last good weights.')
  median = float(np.median(np.sum(np.abs(W) ** p, axis=1)))
  if median < 1e-6:
    raise CollapseError(
        f'the weight rows collapsed to ~0: the median of Σ_i |W_μi|^p is {median:.3g} '
        f'(< 1e-6) instead of ≈ 1, the unit p-sphere (p={p}) the rule converges to. Likely '
        'cause: a learning rate too large for the scale of the inputs (the −g·I·W term of '
        'Eq. 2 then overshoots and shrinks the rows), or an update applied with the wrong sign. '
        'Scale the inputs to [0, 1], lower lr (the paper anneals 0.02–0.04 to 0), and check '
        'the update against ranking_update.')
