"""Whether a fit fits in memory: an estimate made before any training, against what the
machine has, so that a too-large chain stops with one line naming the scale, its rows and
the setting to change instead of failing inside XLA or numpy.

The estimate is per scale: the data arrays and kept outputs, the models' (ensemble x folds)
row masks, and a share of every row's layer activations per model (the end-of-epoch losses
run on all rows at once; XLA fuses most layers, so the share is calibrated, below); the
scales are summed (every trained scale's outputs stay in the result). ``NESTED_AE_MEMORY_GB`` sets the budget (default:
the machine's available memory, ``MemAvailable`` of /proc/meminfo).
"""

from __future__ import annotations

import math
import os

from .config import Config, ScaleSpec
from .data import ScaleData
from .errors import NestedAEError

BYTES = 4  # float32
ACTIVATION_COPIES = 0.5  # calibrated on benchmarks/scale.py (demo chain, 5 folds): estimate
# 1.05 / 3.35 GB against a measured peak RSS of 0.81 / 2.11 GB at 1e5 / 1e6 upstream rows
BASELINE = 0.8e9  # the interpreter with JAX, XLA's CPU client, pandas and scikit-learn


class MemoryBudgetError(NestedAEError):
    """A fit would need more memory than the machine (or NESTED_AE_MEMORY_GB) allows."""


def available_bytes() -> float:
    """The memory budget: ``NESTED_AE_MEMORY_GB`` when set, else the available memory."""
    chosen = os.environ.get("NESTED_AE_MEMORY_GB", "").strip()
    if chosen:
        try:
            budget = float(chosen)
        except ValueError:
            budget = float("nan")
        if not (math.isfinite(budget) and budget > 0):
            raise NestedAEError(f"NESTED_AE_MEMORY_GB={chosen!r} is not a positive number; "
                                "set it to the memory budget in GB (e.g. 8)")
        return budget * 1e9
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return float(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    try:  # other POSIX systems; where the free memory is unknown, no check
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return float("inf")


def row_width(cfg: Config, spec: ScaleSpec, data: ScaleData) -> tuple[int, int]:
    """(inputs, activations): floats per row of the data arrays, and of one model's layers
    (inputs, hidden layers, latent, heads' hidden layers and outputs)."""
    inputs = 0
    for g in spec.inputs:
        if g.kind == "latent":
            inputs += cfg.scale(g.scale).encoder.latent_size
        elif g.kind == "categorical":
            inputs += len(data.categories.groups.get(g.name, ())) or 1
        else:
            inputs += data.inputs[g.name].shape[-1] if g.name in data.inputs else len(g.columns)
    heads = sum(sum(h.hidden) + max(len(h.target), 1) for h in spec.heads)
    return inputs + heads, inputs + sum(spec.encoder.hidden) + spec.encoder.latent_size + heads


def fit_bytes(cfg: Config, spec: ScaleSpec, data: ScaleData, m: int) -> float:
    """Estimated bytes one scale's fit of ``m`` models holds at its peak (module docstring)."""
    n = data.n_rows
    arrays, activations = row_width(cfg, spec, data)
    frame = data.frame.memory_usage(deep=False).sum() if data.frame is not None else 0
    return float(frame + BYTES * n * (3 * arrays + 2 * m + ACTIVATION_COPIES * m * activations))


def check_memory(cfg: Config, data: dict[str, ScaleData], models: dict[str, int]) -> None:
    """Raise :class:`MemoryBudgetError` (one line: the scale, its rows, the settings to
    change) when the chain's estimated need exceeds :func:`available_bytes`. models: {SCALE:
    models it trains at once (folds, an all-rows model, ensemble members)}."""
    need = {s.name: fit_bytes(cfg, s, data[s.name], models[s.name])
            for s in cfg.scales if s.name in data}
    have = available_bytes()
    if BASELINE + sum(need.values()) <= have:
        return
    name = max(need, key=need.get)
    raise MemoryBudgetError(
        f"scale '{name}': {data[name].n_rows:,} rows x {models[name]} models need about "
        f"{(BASELINE + sum(need.values())) / 1e9:.1f} GB of memory, {have / 1e9:.1f} GB "
        f"available; use fewer rows, fewer folds (scales.{name}.cv.n_splits) or ensemble "
        f"members (scales.{name}.training.ensemble), or set NESTED_AE_MEMORY_GB")
