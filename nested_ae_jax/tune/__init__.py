"""``nested-ae tune``: search spaces (:mod:`.space`), successive halving (:mod:`.halving`)
and the nested-CV tuning run on the sweep machinery (:mod:`.run`)."""

from .halving import Rung, schedule, survivors, within_budget
from .run import TuneResult, summary, tune, tuned_document, write_outputs
from .space import Dim, Space, default_space, load_space, sample

__all__ = ["Dim", "Rung", "Space", "TuneResult", "default_space", "load_space", "sample",
           "schedule", "summary", "survivors", "tune", "tuned_document", "within_budget",
           "write_outputs"]
