"""The language of a design request: objective terms and bounds on heads.

``'device.pce'``, ``'2*device.pce'``, ``'min:atomic.gap'``, ``'target:atomic.gap=1.4'`` are
objective terms (:class:`~nested_ae_jax.objectives.Objective`, the language every command
shares: :mod:`nested_ae_jax.objectives`; summed into one score, higher is better);
``'atomic.gap>=1.2'``, ``'1.2<=atomic.gap<=1.6'`` are bounds (:class:`Constraint`). Heads are
named ``SCALE.HEAD`` as the :class:`~.adaptor.Designer` lists them; the names are checked there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import NestedAEError
from ..objectives import KINDS as OBJECTIVE_KINDS
from ..objectives import HEAD, NUMBER, Objective, parse_objective  # noqa: F401 (re-export)

KINDS = {k: i for i, k in enumerate(OBJECTIVE_KINDS)}  # kind -> code of the compiled score


class DesignError(NestedAEError):
    """A bad design request (unknown head or ion, contradictory constraints)."""


@dataclass(frozen=True)
class Constraint:
    """``lower <= head <= upper`` (either side may be None)."""

    head: str
    lower: float | None = None
    upper: float | None = None

    def __str__(self) -> str:
        lo = "" if self.lower is None else f"{self.lower:g}<="
        hi = "" if self.upper is None else f"<={self.upper:g}"
        return f"{lo}{self.head}{hi}"


def parse_constraint(text: str) -> Constraint:
    """'atomic.gap>=1.2', 'atomic.gap<=1.6', '1.2<=atomic.gap<=1.6' ('>' reads as '>=')."""
    s = text.replace(" ", "")
    m = re.fullmatch(rf"({NUMBER})<=?({HEAD})<=?({NUMBER})", s)
    if m:
        return _checked(Constraint(m.group(2), float(m.group(1)), float(m.group(3))), text)
    m = re.fullmatch(rf"({HEAD})(>=|<=|>|<|=)({NUMBER})", s)
    if m:
        head, op, v = m.group(1), m.group(2), float(m.group(3))
        c = Constraint(head, lower=v if op in (">=", ">", "=") else None,
                       upper=v if op in ("<=", "<", "=") else None)
        return _checked(c, text)
    raise DesignError(f"constraint '{text}': expected SCALE.HEAD>=VALUE, SCALE.HEAD<=VALUE or "
                      "LOW<=SCALE.HEAD<=HIGH")


def _checked(c: Constraint, text: str) -> Constraint:
    if c.lower is not None and c.upper is not None and c.lower > c.upper:
        raise DesignError(f"constraint '{text}': lower bound above upper bound")
    return c


def as_objectives(objective: Any) -> list[Objective]:
    """``objective`` (a string, an :class:`Objective` or a list of them) as a non-empty list
    of :class:`Objective`."""
    if objective is None:
        raise DesignError("no objective: give --maximize, --minimize or --target")
    if isinstance(objective, (str, Objective)):
        objective = [objective]
    out = [o if isinstance(o, Objective) else parse_objective(o) for o in objective]
    if not out:
        raise DesignError("no objective: give --maximize, --minimize or --target")
    return out


def as_constraints(constraints: Any) -> list[Constraint]:
    """``constraints`` (None, a string, a :class:`Constraint` or a list of them) as a list of
    :class:`Constraint`."""
    if constraints is None:
        return []
    if isinstance(constraints, (str, Constraint)):
        constraints = [constraints]
    return [c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints]
