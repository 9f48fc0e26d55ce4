"""jaxlocal: layer-local learning rules for deep networks in JAX/Flax.

The pieces a researcher composes: :class:`Block` (a Flax forward module plus its local
objective), :class:`LocalObjective`, :func:`make_learner` (one jitted step for all blocks) and
:func:`fit` (the training loop with evaluation, checkpoints and metrics).
"""

from jaxlocal.blocks import Block, Learner, TrainState, make_learner
from jaxlocal.objectives.base import LocalObjective
from jaxlocal.train import Augment, fit

__version__ = '0.1.0'
