"""Successive halving, one race per selector: every outer split of nested cross-validation
(choosing on its inner folds) and the final choice on all rows (choosing on the plain folds).

Rung r trains the union of the settings still alive in any race, for ``epochs[r]`` epochs;
each race then keeps its best ``keep[r + 1]`` settings by its own score. A race only ever
reads its own scores, so an outer split's survivors depend on its training rows alone.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from ..errors import ConfigError
from ..ranking import top_k


class Rung(NamedTuple):
    """Settings kept alive per race on entering the rung, and its training length."""

    keep: int
    epochs: int


def schedule(trials: int, epochs: int, eta: int = 3, rungs: int | None = None,
             min_epochs: int = 1) -> list[Rung]:
    """Rungs for ``trials`` settings: rung r keeps ceil(trials / eta^r) per race and trains
    epochs / eta^(R-1-r) epochs (at least min_epochs; the last rung the full ``epochs``).
    rungs: default 1 + floor(log_eta(trials)) (down to one setting per race)."""
    if eta < 2:
        raise ConfigError(f"tune --eta {eta}: use at least 2 (the share kept per rung is 1/eta)")
    if rungs is not None and rungs < 1:
        raise ConfigError(f"tune --rungs {rungs}: use at least 1")
    if trials < 1:
        raise ConfigError(f"tune --trials {trials}: use at least 1")
    n = rungs or 1 + int(math.floor(math.log(max(trials, 1)) / math.log(eta) + 1e-9))
    return [Rung(max(1, math.ceil(trials / eta ** r)),
                 max(min_epochs, int(round(epochs / eta ** (n - 1 - r))))) for r in range(n)]


def check_lengths(n, command: str = "tune") -> None:
    """``tune --lengths N`` (or ``command``'s): a whole number, at least 1."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"{command} --lengths {n}: use a whole number, at least 1")


def training_lengths(epochs: int, n: int, chunk: int) -> np.ndarray:
    """``n`` training lengths up to ``epochs``: epochs x 1/n, 2/n, ..., 1, rounded to whole
    chunks of ``chunk`` epochs when a chunk is shorter (so every length ends a compiled
    chunk and adds no program), duplicates dropped; n = 1: the configured epochs alone."""
    check_lengths(n)
    step = chunk if chunk < epochs else 1
    raw = [max(step, step * round(epochs * j / n / step)) for j in range(1, n)]
    return np.array(sorted({*(min(e, epochs) for e in raw), epochs}), np.int64)


def survivors(scores: np.ndarray, alive: np.ndarray, keep: int, maximise: bool = False
              ) -> np.ndarray:
    """(S, J) bool: per race (column), its ``keep`` best alive settings by ``scores`` (S, J)
    (ties: the lower index). Dead settings stay dead; a setting that diverged (NaN or
    infinite score) is kept only where fewer than ``keep`` alive settings have a score."""
    order = top_k(scores, alive, keep, maximise)
    out = np.zeros_like(alive, dtype=bool)
    np.put_along_axis(out, order, True, axis=0)
    return out & alive


def within_budget(rest: list[Rung], count: Callable[[int], int], races: int,
                  seconds_per: float, left: float, floor: int = 1) -> tuple[list[Rung], float]:
    """The remaining rungs ``rest`` shrunk until projected to take at most ``left`` seconds,
    and their projection: ``seconds_per`` seconds per setting-epoch (measured so far) x the
    settings of each rung (the next: ``count(keep)``, the settings alive in any race if each
    keeps ``keep``; a later one at most ``races`` x its keep) x its epochs. Shrinking halves
    every rung's keep (rounded up), and drops a rung that would train no more settings per
    race than the next; the minimum plan is the last rung alone, ``floor`` settings per race
    (keeps never go below it: ``tune --ensemble``). When not even that fits, the minimum plan
    (a nested-CV figure needs the last rung)."""
    plan = list(rest)
    while True:
        projected = projected_seconds(plan, count, races, seconds_per)
        if projected <= left or plan == [Rung(floor, rest[-1].epochs)]:
            return plan, projected
        halved = [Rung(max(floor, math.ceil(r.keep / 2)), r.epochs) for r in plan]
        plan = [r for i, r in enumerate(halved)
                if i == len(halved) - 1 or r.keep > halved[i + 1].keep]


def projected_seconds(plan: list[Rung], count: Callable[[int], int], races: int,
                      seconds_per: float) -> float:
    """Seconds that ``plan`` is projected to take (see :func:`within_budget`)."""
    n, total = count(plan[0].keep), 0.0
    for r in plan:
        n = min(n, races * r.keep)
        total += n * r.epochs
    return total * seconds_per
