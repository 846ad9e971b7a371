"""The records of experiments/reproduce.py: a figure's entry in the results file, a job that
produces figures, and the stated noise levels (docs/reproducibility.md)."""
from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
QUICK_EPOCHS = 5

# Stated noise (see docs/reproducibility.md): a fixed-seed accuracy figure is bit-identical on
# one machine with one device count; across machines, device counts and XLA versions the last
# bits differ and 1500 chaotic epochs carry them into the third decimal, so it gets 1 % of its
# value. Seed spreads (a standard deviation over a few seeds) 25 %; wall times on a shared VM
# 50 %; counts 0.
ACCURACY, SPREAD, TIMING, EXACT = 0.01, 0.25, 0.5, 0.0


class Figure(NamedTuple):
    name: str
    value: float
    noise: float          # absolute tolerance beyond the printed precision
    unit: str
    command: str
    quick: bool
    date: str
    versions: dict
    machine: dict
    source: str           # "measured" or the stored output file it was read from
    commit: str = ""      # the checkout that measured it (git HEAD, "+dirty" with changes)


class Value(NamedTuple):
    key: str
    value: float
    unit: str
    rel_noise: float


class Job(NamedTuple):
    name: str
    command: Callable[[bool], list[list[str]]]      # quick -> steps: nested-ae argv, or a
                                                    # script path (.py) and its arguments
    read: Callable[[Path], Iterable[Value]]         # run folder -> values
    source: str = "measured"


class ReproduceError(Exception):
    pass


# ---------------------------------------------------------------- environment ----------------
def versions() -> dict:
    import flax
    import jax
    import numpy
    import optax
    return {"python": platform.python_version(), "jax": jax.__version__,
            "flax": flax.__version__, "optax": optax.__version__, "numpy": numpy.__version__}


def machine() -> dict:
    import jax
    return {"platform": platform.platform(), "cpus": os.cpu_count(),
            "device": jax.devices()[0].device_kind}


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

