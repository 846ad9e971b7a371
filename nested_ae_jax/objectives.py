"""What "best" means, in one language for ``design``, ``suggest`` and ``campaign``.

An :class:`Objective` names a head (``SCALE.HEAD``), a kind (``max``, ``min`` or ``target``:
closest to ``value``) and a weight (design sums weighted terms; the others take one term).
Written as text::

    device.pce            2*device.pce            (the kind comes from the flag: --maximize)
    max:device.pce        min:atomic.gap          target:atomic.gap=1.34
    atomic.gap=1.34       (with --target)         target=1.34:atomic.gap   (older campaign form)

On the command line: ``--maximize SCALE.HEAD``, ``--minimize SCALE.HEAD``, ``--target
SCALE.HEAD=VALUE`` or ``--objective KIND:SCALE.HEAD[=VALUE]`` (the same for the three
commands; ``cli/objective.py``). The head names are checked where a chain is known.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .errors import ConfigError

KINDS = ("max", "min", "target")
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
HEAD = r"[A-Za-z_][\w\[\]-]*\.[\w.\[\]-]+"          # SCALE.HEAD


class Objective(NamedTuple):
    """One term of a score, higher is better: max -> +weight*h, min -> -weight*h, target ->
    -weight*|h - value|; ``head`` is ``SCALE.HEAD`` ("" where only the kind matters: a
    campaign on a bare target array). Hashable: a static argument of compiled programs."""

    head: str = ""
    kind: str = "max"
    weight: float = 1.0
    value: float = 0.0

    def describe(self) -> str:
        term = ("" if self.weight == 1.0 else f"{self.weight:g}*") + (self.head or "the target")
        return {"max": f"max {term}", "min": f"min {term}"}.get(
            self.kind, f"{term} closest to {self.value:g}")


def parse_objective(text: str, kind: str | None = None) -> Objective:
    """Text in the module's language -> :class:`Objective`. ``kind``: the flag's
    (``--maximize`` -> "max", ...); a ``KIND:`` prefix of the text that disagrees with it is
    an error. Without either, max. A head may be absent ('max', 'target=1.4')."""
    s = text.strip()
    m = re.fullmatch(rf"target\s*=\s*({NUMBER})\s*(?::\s*(.*))?", s)
    if m:                                      # target=VALUE[:SCALE.HEAD]
        _same_kind(text, kind, "target")
        return _checked(text, (m.group(2) or "").strip(), "target", 1.0, float(m.group(1)))
    m = re.fullmatch(r"(\w+)\s*:(.*)", s)
    if m or s in KINDS:
        written, s = (m.group(1), m.group(2).strip()) if m else (s, "")
        _same_kind(text, kind, written)
        kind = written
    kind = kind or "max"
    if kind not in KINDS:
        raise ConfigError(f"objective '{text}': the kind must be max, min or target, e.g. "
                          "max:device.pce or target:atomic.gap=1.34")
    weight = 1.0
    m = re.fullmatch(rf"({NUMBER})\s*\*\s*(.*)", s)
    if m:
        weight, s = float(m.group(1)), m.group(2).strip()
    value = 0.0
    if kind == "target":
        m = re.fullmatch(rf"({HEAD})?\s*=\s*({NUMBER})", s)
        if not m:
            raise ConfigError(f"objective '{text}': a target needs SCALE.HEAD=VALUE, e.g. "
                              "atomic.gap=1.34")
        s, value = m.group(1) or "", float(m.group(2))
    return _checked(text, s, kind, weight, value)


def _same_kind(text: str, flag: str | None, written: str) -> None:
    if flag is not None and written in KINDS and written != flag:
        raise ConfigError(f"objective '{text}' says {written} but was given to the {flag} flag; "
                          f"write it without the '{written}:' prefix, or use --objective")


def _checked(text: str, head: str, kind: str, weight: float, value: float) -> Objective:
    if head and not re.fullmatch(HEAD, head):
        raise ConfigError(f"objective '{text}': expected [WEIGHT*]SCALE.HEAD, e.g. device.pce")
    if not weight > 0:
        raise ConfigError(f"objective '{text}': the weight must be > 0")
    return Objective(head, kind, weight, value)


def as_objective(objective: str | Objective, kind: str | None = None) -> Objective:
    return objective if isinstance(objective, Objective) else parse_objective(objective, kind)


def utility(objective: Objective, y: jax.Array) -> jax.Array:
    """(P,) head values -> (P,) utility to maximise: y, -y, or -|y - value| (unweighted)."""
    if objective.kind == "max":
        return y
    if objective.kind == "min":
        return -y
    if objective.kind == "target":
        return -jnp.abs(y - objective.value)
    raise ConfigError(f"objective kind '{objective.kind}': use 'max', 'min' or 'target'")
