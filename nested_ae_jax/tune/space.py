"""Search spaces of ``nested-ae tune``: one record per tuned scale, sampled quasi-randomly.

A :class:`Dim` is one setting of the tuned scale (a ``sweep`` grid key such as
``training.learning_rate`` or ``heads.gap.dropout``): a log-uniform or uniform range, or a list
of choices. :func:`sample` draws settings from a scrambled, seeded Sobol sequence (evenly
spread in every dimension, unlike independent random draws). A ``--space FILE`` (TOML) gives
the dimensions as ``[dims."KEY"]`` tables with ``low``/``high`` (and ``log = true``) or
``choices``; :func:`default_space` is the space of docs/sweeps-and-tuning.md, "Tuning".
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, ScaleSpec, lookup
from ..errors import ConfigError
from ..fitting import latent_maskable


@dataclass(frozen=True)
class Dim:
    """One tuned setting: ``key`` (a sweep grid key of the tuned scale); a range
    [low, high] (log: log-uniform) or ``choices`` (drawn with equal weight)."""

    key: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple = ()

    def value(self, u: float) -> Any:
        """The setting at quantile u in [0, 1)."""
        if self.choices:
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.log:
            return float(math.exp(math.log(self.low) + u * (math.log(self.high)
                                                            - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))


@dataclass(frozen=True)
class Space:
    """The dimensions searched for one scale."""

    dims: tuple[Dim, ...]

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dims]


def default_space(spec: ScaleSpec) -> Space:
    """Learning rate 1e-4..1e-2 and encoder L1/L2 1e-6..1e-1 log-uniform, dropout 0..0.3 on
    the encoder and every regression head, the loss weight 0.1..10 (log) of every
    reconstruction head against the properties, batch size the configured one or twice it;
    with the built-in networks, the latent size half, once or twice the configured one
    (masked in one program, :func:`fitting.latent_maskable`)."""
    b = spec.training.batch_size
    dims = [Dim("training.learning_rate", 1e-4, 1e-2, log=True),
            Dim("encoder.l1", 1e-6, 1e-1, log=True),
            Dim("encoder.l2", 1e-6, 1e-1, log=True),
            Dim("encoder.dropout", 0.0, 0.3)]
    for h in spec.heads:
        if h.kind == "regression":
            dims.append(Dim(f"heads.{h.name}.dropout", 0.0, 0.3))
        elif h.kind == "reconstruction":
            dims.append(Dim(f"heads.{h.name}.weight", 0.1, 10.0, log=True))
    dims.append(Dim("training.batch_size", choices=(b, 2 * b)))
    if latent_maskable(spec):
        k = spec.encoder.latent_size
        dims.append(Dim("encoder.latent_size", choices=tuple(sorted({max(1, k // 2), k,
                                                                      2 * k}))))
    return Space(tuple(dims))


def load_space(path: str | Path) -> Space:
    """A Space from a TOML file of ``[dims."KEY"]`` tables (see the module docstring)."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--space file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--space {path}: cannot be read ({type(err).__name__})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"--space {path}: not valid TOML: {err}") from None
    tables = doc.get("dims")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"--space {path}: expected [dims.\"KEY\"] tables")
    return Space(tuple(_dim(key, t, path) for key, t in tables.items()))


def _dim(key: str, table: Any, path) -> Dim:
    where = f"--space {path}: dims.{key}"
    if not isinstance(table, dict) or set(table) - {"low", "high", "log", "choices"}:
        raise ConfigError(f"{where}: give low/high (log) or choices")
    if "choices" in table:
        if not isinstance(table["choices"], list) or not table["choices"]:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        return Dim(key, choices=tuple(tuple(c) if isinstance(c, list) else c
                                      for c in table["choices"]))
    low, high, log = table.get("low"), table.get("high"), bool(table.get("log", False))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) \
            or not low <= high \
            or (log and low <= 0):
        raise ConfigError(f"{where}: need numbers low <= high (log: low > 0)")
    return Dim(key, float(low), float(high), log)


def configured(cfg: Config, scale: str, space: Space) -> dict[str, Any]:
    """The configured value of every key of ``space`` on scale ``scale`` of ``cfg``: the
    setting that a plain ``train`` of the config uses (tune's first trial)."""
    out = {}
    for key in space.keys:
        try:
            out[key] = _plain(lookup(cfg, f"{scale}.{key}"))
        except ConfigError:
            raise ConfigError(f"tune: scales.{scale} has no setting '{key}'") from None
    return out


def sample(space: Space, n: int, seed: int) -> list[dict[str, Any]]:
    """n settings {KEY: value} from a scrambled Sobol sequence seeded with ``seed``."""
    from scipy.stats import qmc

    if n < 1:
        raise ConfigError(f"tune --trials {n}: use at least 1")
    u = qmc.Sobol(len(space.dims), scramble=True, seed=seed).random_base2(
        max(0, math.ceil(math.log2(n))))[:n]
    return [{d.key: _plain(d.value(x)) for d, x in zip(space.dims, row)} for row in u]


def _plain(v: Any) -> Any:
    """TOML-ready values (lists, not tuples)."""
    return list(v) if isinstance(v, tuple) else v.item() if isinstance(v, np.generic) else v
