"""Finished (or stopped) runs on disk: their saved config, their data and their last state."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from jaxlocal import data as data_lib
from jaxlocal import methods
from jaxlocal.checkpoint import Checkpointer


def restored_run(workdir: str, method: str | None = None):
  """(config, dataset, state) of the last checkpoint in ``workdir``; with ``method``, the run
  must be of that method."""
  with open(os.path.join(workdir, 'config.json')) as f:
    config = ml_collections.ConfigDict(json.load(f))
  if method is not None and config.method != method:
    raise ValueError(f'{workdir} is a {config.method!r} run; this needs a {method!r} run')
  dataset = data_lib.load_dataset(config.dataset, data_dir=config.data_dir or None,
                                  train_examples=config.train_examples,
                                  image_size=config.image_size,
                                  num_classes=config.get('num_classes', 0))
  learner = methods.get_method(config.method).build(config, dataset, steps_per_epoch=1)
  like = jax.jit(learner.init)(jax.random.key(0), jnp.zeros((2, *dataset.image_shape)))
  checkpointer = Checkpointer(os.path.join(workdir, 'checkpoints'))
  try:
    epoch = checkpointer.latest_epoch()
    if not epoch:
      raise FileNotFoundError(f'no checkpoint in {workdir}/checkpoints: train the run first')
    state = checkpointer.restore(epoch, like)
  finally:
    checkpointer.close()
  return config, dataset, state
