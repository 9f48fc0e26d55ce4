"""Examples/s of the jitted Krotov–Hopfield minibatch update, against NumPy and a bare matmul.

Times ``jaxlocal.rules.hebbian.ranking_update`` in a ``lax.scan`` over the minibatches of one
call (the weights donated, as in training), the reference notebook's recipe in plain NumPy
(examples as columns, ranking by argsort) on the same data, and, in the same run, a jitted scan
of just the rule's two dominant products at the same shapes: I = v Wᵀ ((B, N) × (N, K)) and
gᵀ v ((K, B) × (B, N)). FLOPs counted per update: 2 · 2KNB for those two products only; the
K×N and B×K elementwise work (|W|^(p-1), the decay term, the normaliser, the metrics) and the
ranking are not counted, so "GFLOP/s" is the products' rate and "of matmul" is the time of the
bare products over the time of the whole rule. Medians of ``--repeats`` calls after a warm-up;
the three take turns, so that a passing load on the (shared) machine falls on all of them.

  python benchmarks/hebbian_throughput.py --json=hebbian_throughput.json
  python benchmarks/hebbian_throughput.py --inputs=784 --batches=100 --p=4
"""

import functools
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxlocal.rules import hebbian

flags.DEFINE_integer('num_hidden', 2000, 'Hidden units K.')
flags.DEFINE_list('inputs', ['784', '3072'], 'Input sizes N to time.')
flags.DEFINE_list('batches', ['100', '1000'], 'Minibatch sizes B to time.')
flags.DEFINE_integer('examples_per_call', 2000,
                     'Examples per timed call (a whole number of minibatches).')
flags.DEFINE_float('p', 4.0, 'Lebesgue norm p (4: the paper).')
flags.DEFINE_integer('k', 2, 'Rank of the anti-Hebbian unit.')
flags.DEFINE_float('delta', 0.4, 'Anti-Hebbian strength Δ.')
flags.DEFINE_float('lr', 0.02, 'Learning rate.')
flags.DEFINE_integer('repeats', 7, 'Timed calls per measurement (the median is reported).')
flags.DEFINE_string('json', 'hebbian_throughput.json', 'Where to write the results.')
FLAGS = flags.FLAGS


def numpy_step(W, v, eps, p, k, delta, prec=1e-30):
  """The notebook's minibatch update in NumPy: W (K, N), v (B, N) as columns, argsort ranking."""
  num_hidden, batch = W.shape[0], v.shape[0]
  inputs = v.T
  tot_input = (np.sign(W) * np.absolute(W) ** (p - 1)) @ inputs
  order = np.argsort(tot_input, axis=0)
  columns = np.arange(batch)
  yl = np.zeros((num_hidden, batch), W.dtype)
  yl[order[num_hidden - 1, columns], columns] = 1.0
  yl[order[num_hidden - k, columns], columns] = -delta
  xx = np.sum(yl * tot_input, axis=1)
  ds = yl @ inputs.T - xx[:, None] * W
  nc = max(np.max(np.absolute(ds)), prec)
  return W + eps * (ds / nc)


def median_seconds(calls, repeats):
  """Median wall time of each of ``calls`` (name -> function), taking turns, after a warm-up."""
  for call in calls.values():
    call()
  seconds = {name: [] for name in calls}
  for _ in range(repeats):
    for name, call in calls.items():
      started = time.perf_counter()
      call()
      seconds[name].append(time.perf_counter() - started)
  return {name: statistics.median(s) for name, s in seconds.items()}


def measure(num_hidden, num_inputs, batch, steps, repeats):
  """Seconds per call of `steps` minibatch updates: the jitted rule, NumPy, the bare products."""
  key_w, key_v = jax.random.split(jax.random.key(0))
  W0 = hebbian.init_weights(key_w, num_hidden, num_inputs)
  data = jax.random.uniform(key_v, (steps, batch, num_inputs))

  step = functools.partial(hebbian.ranking_update, lr=FLAGS.lr, p=FLAGS.p, k=FLAGS.k,
                           delta=FLAGS.delta)
  rule = jax.jit(lambda W, vs: jax.lax.scan(step, W, vs), donate_argnums=0)

  def products(carry, v):
    W, _ = carry
    I = v @ W.T
    return (W, I.T @ v), None

  bare = jax.jit(lambda W, vs: jax.lax.scan(products, (W, jnp.zeros_like(W)), vs)[0][1])

  state = {'W': W0.copy()}

  def run_rule():
    state['W'], metrics = rule(state['W'], data)
    jax.block_until_ready((state['W'], metrics))

  W_np, data_np = np.asarray(W0), np.asarray(data)

  def run_numpy():
    W = W_np
    for v in data_np:
      W = numpy_step(W, v, FLAGS.lr, FLAGS.p, FLAGS.k, FLAGS.delta)

  return median_seconds({'jax_s': run_rule, 'numpy_s': run_numpy,
                         'matmul_s': lambda: bare(W0, data).block_until_ready()}, repeats)


def main(argv):
  del argv
  K = FLAGS.num_hidden
  rows = []
  for N in map(int, FLAGS.inputs):
    for B in map(int, FLAGS.batches):
      steps = max(1, FLAGS.examples_per_call // B)
      t = measure(K, N, B, steps, FLAGS.repeats)
      flops = 4.0 * K * N * B * steps
      rows.append({'num_inputs': N, 'batch': B, 'steps_per_call': steps, **t,
                   'jax_examples_per_s': B * steps / t['jax_s'],
                   'numpy_examples_per_s': B * steps / t['numpy_s'],
                   'speedup_vs_numpy': t['numpy_s'] / t['jax_s'],
                   'gflops': flops / t['jax_s'] / 1e9,
                   'matmul_gflops': flops / t['matmul_s'] / 1e9,
                   'fraction_of_matmul': t['matmul_s'] / t['jax_s']})
  device = f'{jax.device_count()}x {jax.devices()[0].device_kind}'
  print(f'\nranking_update, K={K}, p={FLAGS.p}, k={FLAGS.k}, float32, {device}, '
        f'median of {FLAGS.repeats} calls; GFLOP/s counts the two K×N×B products only\n')
  print('| N | B | jax examples/s | numpy examples/s | jax/numpy | GFLOP/s | bare matmul GFLOP/s '
        '| of matmul |')
  print('|---|---|---|---|---|---|---|---|')
  for r in rows:
    print(f'| {r["num_inputs"]} | {r["batch"]} | {r["jax_examples_per_s"]:.0f} | '
          f'{r["numpy_examples_per_s"]:.0f} | {r["speedup_vs_numpy"]:.2f}x | {r["gflops"]:.1f} | '
          f'{r["matmul_gflops"]:.1f} | {100 * r["fraction_of_matmul"]:.0f}% |')
  with open(FLAGS.json, 'w') as f:
    json.dump({'device': device, 'num_hidden': K, 'p': FLAGS.p, 'k': FLAGS.k,
               'delta': FLAGS.delta, 'dtype': 'float32', 'rows': rows}, f, indent=2)


if __name__ == '__main__':
  app.run(main)
