"""Local objectives: pure ``(aux_params, h, batch) -> (loss, metrics)`` functions with their init."""

from jaxlocal.objectives.base import (LocalObjective, accuracy, as_objective, batch_mean,
                                      classifier, cross_entropy, no_aux_params)
from jaxlocal.objectives.local_error import (LOSSES, label_similarity, local_error,
                                             predsim_loss, sim_loss, similarity_matrix)
