"""Gradient-based inverse design through a trained chain: ``nested-ae design``.

The chain is differentiable from composition to device property. :func:`design` optimises the
site fractions of an ABX3 composition and the device choices (the categorical inputs of every
scale) for an objective over the chain's heads under bounds on them, from many random starts
at once, and returns a ranked table of candidates whose every number was re-evaluated on the
reported fractions (heads as ``predict`` gives them, out-of-domain scores, feasibility).
Baselines (random search, latent-space sampling) and a Pareto front of two heads use the same
pieces.

Modules, each importing only modules listed above it:

- :mod:`.objectives`: the request language: ``parse_objective``, ``parse_constraint``,
  :class:`Objective`, :class:`Constraint`, :class:`DesignError`;
- :mod:`.forward`: :class:`ChainForward`, the trained run as one function of (fractions,
  device codes) -> heads, with its inputs, choices and heads as records (:class:`DesignInput`,
  :class:`DesignChoice`, :class:`HeadSource`);
- :mod:`.variables`: :class:`Variables`, what may vary (``exclude``, ``fix``,
  ``max_ions_per_site``);
- :mod:`.reference`: the out-of-domain reference (:class:`Reference`) and ``ood.*`` columns;
- :mod:`.adaptor`: :class:`Designer`, the forward function, its reference and its variables
  in one object;
- :mod:`.problem`: :class:`Problem` (objective and bounds as arrays over the heads), scores,
  violations, ranking, :func:`candidate_table`, :func:`format_table`;
- :mod:`.optimiser`: the vmapped Adam multi-start run (:func:`optimise`, with its own
  compile cache per designer) and :func:`design`;
- :mod:`.baselines`: :func:`random_search`, :func:`latent_sampling`, :func:`compare`;
- :mod:`.pareto`: :func:`pareto_front`, :func:`pareto_figure`, :func:`write_pareto`.
"""

from .adaptor import Designer
from .baselines import compare, latent_sampling, random_search
from .objectives import Constraint, DesignError, Objective, parse_constraint, parse_objective
from .optimiser import Optimised, design, optimise
from .pareto import direction, pareto_figure, pareto_front, write_pareto
from .problem import (Problem, candidate_table, format_table, make_problem, score_np,
                      violation_np)
from .variables import Variables

__all__ = ["Constraint", "DesignError", "Designer", "Objective", "Optimised", "Problem",
           "Variables", "candidate_table", "compare", "design", "direction", "format_table",
           "latent_sampling", "make_problem", "optimise", "parse_constraint", "parse_objective",
           "pareto_figure", "pareto_front", "random_search", "score_np", "violation_np",
           "write_pareto"]
