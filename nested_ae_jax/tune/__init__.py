"""``nested-ae tune``: search spaces (:mod:`.space`), successive halving (:mod:`.halving`)
and the nested-CV tuning run on the sweep machinery (:mod:`.run`)."""

from .halving import Rung, schedule, survivors, training_lengths, within_budget
from .run import Ensemble, TuneResult, summary, tune, tuned_document, write_outputs
from .space import Dim, Space, default_space, load_space, sample

__all__ = ["Dim", "Ensemble", "Rung", "Space", "TuneResult", "default_space", "load_space",
           "sample", "schedule", "summary", "survivors", "training_lengths", "tune",
           "tuned_document", "within_budget", "write_outputs"]
