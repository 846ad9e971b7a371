"""Simulated campaigns of a config's data set: ``nested-ae campaign``.

:func:`simulate` takes a config and an objective on one of its regression heads, builds the
candidate pool (the distinct raw input rows of that scale's data, targets averaged:
``bo.merge_pool``), the feature maps (``bo.chain``: the honest latent chain, the raw
descriptors), and runs ``trials`` simulated campaigns of every method with the engine
(``bo.run_campaign``: vmap over trials, while-loop over rounds):

- ``retrained``: GP on the honest chain's latents, the objective's scale retrained per trial
  on the revealed rows (target head on) every ``relearn_every`` rounds (``bo.relearn``);
- ``latent``: GP on the honest chain's latents (upstream latents + the scale's own), blind;
- ``raw``: GP on the raw input columns (categoricals one-hot), standardised;
- ``ensemble``: a deep ensemble of small MLPs on the latent features, retrained on the
  revealed rows every round (``bo.mlp_ensemble``), no GP;
- ``random``: uniformly random picks;
- ``leaky`` (not run by default): GP on the latents of the same chain trained *with* the
  target heads on every candidate's target, as a chain trained for prediction would be. It
  has seen every answer before the campaign starts; it measures what that leak is worth
  (e.g. next to figures published with such a protocol), not a method.

Every method's trials start from the same initial picks (the same seed). Results, per-method
wall times and the files (``bo.write_report``: campaign.csv, summary.md, campaign_box.png,
plus pool.csv) come back as a :class:`Simulation`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..config import Config
from ..errors import ConfigError
from ..objectives import Objective
from . import acquisition as acq
from . import chain as bochain
from .campaign import CampaignResult, gp_method, ensemble_method, random_method, run_campaign
from .ensemble import EnsembleConfig, mlp_ensemble
from .relearn import relearner

METHODS = ("retrained", "latent", "raw", "ensemble", "random")
EXTRA_METHODS = ("hybrid", "leaky")
LABELS = {"retrained": "latent GP (retrained)", "latent": "latent GP", "raw": "raw GP",
          "ensemble": "ensemble", "random": "random", "leaky": "latent GP (leaky)",
          "hybrid": "raw + latent GP (retrained)"}


@dataclass
class Simulation:
    """What :func:`simulate` returns: ``results`` {label: CampaignResult}, ``seconds``
    {label: wall time of its campaigns}, ``pool`` (the distinct candidates), ``features``
    {space: (P, D)}, ``feature_seconds`` (training the honest chain), ``context`` (what was
    run, for summary.md), ``paths`` of the written files (with ``out``)."""

    results: dict[str, CampaignResult]
    seconds: dict[str, float]
    pool: pd.DataFrame
    features: dict[str, np.ndarray]
    feature_seconds: float
    context: dict
    paths: dict = field(default_factory=dict)


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    """'latent,raw' or a list -> validated method names, in the given order."""
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods)
             if m.strip()]
    bad = [m for m in names if m not in METHODS + EXTRA_METHODS]
    if bad or not names:
        raise ConfigError(f"--methods: unknown method '{bad[0] if bad else ''}'; use a comma "
                          f"list of {', '.join(METHODS + EXTRA_METHODS)}")
    return list(dict.fromkeys(names))


def _features(cfg: Config, target, pool: pd.DataFrame, names: list[str], *, epochs, data_root,
              frames, progress, say) -> tuple[dict[str, np.ndarray], float, Any]:
    """The feature maps ``names`` need: honest latents (and the map, for relearning), leaky
    latents, raw features; returns (features, seconds the latents took, the latent map or
    None)."""
    specs = cfg.specs
    latent_map = None
    features: dict[str, np.ndarray] = {}
    feature_seconds = 0.0
    if {"latent", "ensemble", "retrained", "hybrid"} & set(names):
        say("training the honest chain (target heads at weight 0, one model per scale)")
        start = time.perf_counter()
        latent_map = bochain.honest_map(cfg, target, pool, epochs=epochs, data_root=data_root,
                                        frames=frames, progress=progress)
        features["latent"] = latent_map.features
        feature_seconds = time.perf_counter() - start
        say(f"latent features: {features['latent'].shape[1]} per candidate "
            f"({feature_seconds:.1f} s)")
    if "leaky" in names:
        say("training the leaky chain (target heads trained on every candidate's target)")
        features["leaky"] = bochain.honest_latents(cfg, target, pool, epochs=epochs,
                                                   data_root=data_root, frames=frames,
                                                   progress=progress, blind=False)
    if {"raw", "hybrid"} & set(names):
        cats = bochain.pool_categories(pool, specs, target.scale)
        features["raw"] = bochain.frame_raw_features(pool, specs, cats, target.scale, "<pool>")

    return features, feature_seconds, latent_map


def _method(name: str, acquisition: str, features: dict[str, np.ndarray], ensemble, relearn
            ) -> tuple[Any, dict]:
    """The campaign method of ``name`` and its keyword arguments to ``run_campaign``
    (``relearn()`` builds the relearner of the ``retrained`` method)."""
    kw: dict = {}
    if name in ("latent", "raw", "leaky", "retrained"):
        method = gp_method(acquisition)
        kw["features"] = features["latent" if name == "retrained" else name]
        if name == "retrained":
            kw["relearn"] = relearn()
    elif name == "hybrid":  # the raw descriptors beside the retrained latents (ARD GP)
        method = gp_method(acquisition)
        kw["features"] = np.concatenate([features["raw"], features["latent"]], axis=1)
        kw["relearn"] = relearn(features["raw"])
    elif name == "ensemble":
        method = ensemble_method("ucb" if acquisition == "ts" else acquisition)
        kw["surrogate"] = mlp_ensemble(features["latent"], ensemble)
    else:
        method = random_method()
    return method, kw


def _context(target, pool, frame, names, features, feature_seconds, seconds, *, trials, init,
             batch, seed, acquisition, relearn_every, relearn_epochs) -> dict:
    """What ``summary.md`` says the simulation was."""
    return {
        "objective": f"{target.describe()} (column '{target.column}')",
        "pool": f"{len(pool)} distinct candidates of scale '{target.scale}' "
                f"({len(frame)} rows, identical inputs merged, targets averaged)",
        "trials": trials, "initial picks": init, "batch": batch, "seed": seed,
        "acquisition": acquisition,
        **({"retrained latents": f"objective scale retrained per trial on its revealed rows "
                                 f"every {relearn_every} rounds, {relearn_epochs} epochs"}
           if {"retrained", "hybrid"} & set(names) else {}),
        "latent features": (f"{features['latent'].shape[1]} (honest chain: target heads at "
                            f"weight 0, one model per scale, {feature_seconds:.1f} s)"
                            if "latent" in features else "not used"),
        **({"leaky features": f"{features['leaky'].shape[1]} (the chain trained on every "
                              "candidate's target: not a method, a measure of the leak)"}
           if "leaky" in features else {}),
        "raw features": (f"{features['raw'].shape[1]} (categoricals one-hot)"
                         if "raw" in features else "not used"),
        "wall time": ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()),
    }


def simulate(cfg: Config, objective: str | Objective, *, trials: int = 200, init: int = 5,
             batch: int = 1,
             methods: str | Sequence[str] = METHODS, acquisition: str = "ei",
             epochs: int | None = None, seed: int = 0, data_root: str | None = None,
             out: str | Path | None = None, ensemble: EnsembleConfig = EnsembleConfig(),
             frames: dict[str, pd.DataFrame] | None = None,
             relearn_every: int = 10, relearn_epochs: int = 50,
             progress: Callable[[str], None] | None = None) -> Simulation:
    """Simulated campaigns of ``methods`` on the distinct candidates of a scale's data.

    objective: an :class:`~nested_ae_jax.objectives.Objective` or its text, e.g.
    'max:SCALE.HEAD', 'min:SCALE.HEAD', 'target:SCALE.HEAD=VALUE'. trials
    campaigns per method, each from ``init`` random picks (seeded: the same for every method),
    ``batch`` picks per round, until the pool's best is revealed. acquisition: ei, ucb or ts
    for the GP methods (the ensemble uses ei or ucb; with ts, ucb). epochs: train the honest
    chain this long (default: the config's). frames: the scales' data in memory.
    relearn_every / relearn_epochs: the ``retrained`` method's refit period (rounds) and
    epochs per refit. out: write the report there. Returns a :class:`Simulation`.
    """
    specs = cfg.specs
    target = bochain.parse_head_objective(objective, specs)
    names = parse_methods(methods)
    if acquisition not in acq.ACQUISITIONS:
        raise ConfigError(f"--acquisition {acquisition}: use one of {', '.join(acq.ACQUISITIONS)}")
    say = progress or (lambda _: None)

    frame = (frames or {}).get(target.scale)
    if frame is None:
        frame = bochain.scale_frames(cfg, [target.scale], data_root)[target.scale]
    pool = bochain.candidate_pool(frame, specs, target, f"scale '{target.scale}' data")
    y = pool[target.column].to_numpy(np.float64)
    say(f"pool: {len(pool)} distinct candidates of scale '{target.scale}' ({len(frame)} rows); "
        f"objective {target.describe()}")

    features, feature_seconds, latent_map = _features(
        cfg, target, pool, names, epochs=epochs, data_root=data_root, frames=frames,
        progress=progress, say=say)

    results, seconds = {}, {}
    for name in names:
        label = LABELS[name]
        method, kw = _method(name, acquisition, features, ensemble, lambda fixed=None: relearner(
            cfg, target, latent_map, pool, every=relearn_every, epochs=relearn_epochs,
            fixed=fixed))
        start = time.perf_counter()

        def phase(size, running, rnd, label=label, start=start):
            say(f"{label}: round {rnd}, {running} trials running "
                f"({time.perf_counter() - start:.1f} s)")

        results[label] = run_campaign(method, y, objective=target.objective, trials=trials,
                                      init=init, batch=batch, seed=seed, on_phase=phase, **kw)
        seconds[label] = time.perf_counter() - start
        share = results[label].share
        say(f"{label}: mean share {100 * np.nanmean(share):.1f} % in {seconds[label]:.1f} s")

    context = _context(target, pool, frame, names, features, feature_seconds, seconds,
                       trials=trials, init=init, batch=batch, seed=seed,
                       acquisition=acquisition, relearn_every=relearn_every,
                       relearn_epochs=relearn_epochs)
    sim = Simulation(results, seconds, pool, features, feature_seconds, context)
    if out is not None:
        from .. import io
        from .report import write_report

        sim.paths = write_report(out, results, context)
        sim.paths["pool"] = Path(out) / "pool.csv"
        io.atomic_write_csv(sim.paths["pool"], pool)
    return sim
