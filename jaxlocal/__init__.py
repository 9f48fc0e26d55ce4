"""jaxlocal: layer-local learning rules for deep networks in JAX/Flax."""

from jaxlocal.blocks import Block, Learner, TrainState, make_learner
from jaxlocal.objectives.base import LocalObjective

__version__ = '0.1.0'
