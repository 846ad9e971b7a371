"""``nested-ae tune``: choose a scale's settings by nested cross-validation, with successive
halving inside every outer training split, on the sweep machinery.

Every rung is one :func:`sweep.sweep` with ``outer_folds``: the surviving settings (sampled by
:mod:`space`) at the rung's training length, their plain-fold models and the nested models
(K outer x I inner folds, upstream scales of a chain refitted per nested model by
``nested_chain``) in the sweep's compiled groups. K + 1 races run side by side
(:mod:`halving`): outer split o ranks settings by their pooled error on its inner folds only,
and the final race by the plain folds on all rows. At the last rung (the configured
``training.epochs``) every setting is also scored at shorter training lengths read from the
same run (``lengths``: the models' parameters after each length, ``fitting.fit_models``
snapshots), and the races choose among these (setting, length) candidates: outer split o's
choice, trained on its whole training split, is scored on its validation rows at its length
(the nested-CV figure); the final race's winner is the setting and length written to
``tuned.toml``. The tuned scale's scalers are fitted on training rows (scaler = train) and
its parameters are the last epoch's (select = last), so no outer validation row reaches an
inner fit or choice. With ``ensemble`` K > 1 every race keeps at least K settings to the
last rung: outer split o's K best by its inner folds predict its validation rows by their
mean (the ensemble's nested-CV figure), and the final race's K best are the final ensemble.
With a time budget, the rungs after each one are shrunk (fewer survivors per race, fewer
rungs) when projected not to fit; the last rung always runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from .. import datasets, io
from ..errors import ConfigError
from ..config import Config, config_to_dict, override, resolve_data_path
from ..ranking import finite_members, top_k
from ..sweep import SweepResult, default_metric, maximised, sweep
from .halving import (Rung, check_lengths, projected_seconds, schedule, survivors,
                      training_lengths, within_budget)
from .space import Space, configured, default_space, sample


class Candidates(NamedTuple):
    """What a rung's races choose from: per candidate (C,) its setting, its training length
    (epochs; several per setting at the last rung, ``training_lengths``) and (C, races) the
    races it is alive in (its setting's)."""

    setting: np.ndarray
    epochs: np.ndarray
    alive: np.ndarray


class Ensemble(NamedTuple):
    """``tune --ensemble K`` > 1: per outer split its K best candidates' settings and
    training lengths, best first (one (K,) array each, shorter where some diverged); the
    final race's K best with their plain-fold CV; nested: the ensembles' figure
    (``selection.select``'s "ensemble")."""

    k: int
    chosen: list[np.ndarray]
    chosen_epochs: list[np.ndarray]
    final: np.ndarray
    final_epochs: np.ndarray
    final_cv: np.ndarray
    nested: dict


@dataclass(frozen=True)
class TuneResult:
    """settings: the S sampled settings; trials: one row per rung and candidate (a setting
    at a training length); chosen: (K,) index of the setting chosen in each outer split,
    chosen_epochs (K,) its training length; final, final_epochs: the setting and length
    chosen on all rows; nested: the last rung's nested summary (outer, inner); outer: per
    outer fold (chosen candidate: an index into the last rung's rows, its inner and outer
    metric); last: the last rung's SweepResult."""

    scale: str
    metric: str
    config: Config
    settings: list[dict]
    rungs: list[Rung]
    trials: pd.DataFrame
    chosen: np.ndarray
    chosen_epochs: np.ndarray
    final: int
    final_epochs: int
    final_cv: float
    nested: dict
    outer: pd.DataFrame
    last: SweepResult
    n_models: int
    seconds: float
    budget: dict | None = None  # --budget-minutes: minutes, projected_s, spent_s, checks
    ensemble: Ensemble | None = None  # --ensemble K > 1
    space: Space | None = None  # the space searched (for the figure's axes)


def tune(cfg: Config, *, scale: str | None = None, trials: int = 16, eta: int = 3,
         rungs: int | None = None, outer_folds: int = 5, space: Space | None = None,
         seed: int = 0, metric: str | None = None, data_root: str | None = None,
         progress: Callable[[str], None] | None = None, devices: list | None = None,
         budget_minutes: float | None = None, clock: Callable[[], float] = time.perf_counter,
         ensemble: int = 1, lengths: int = 4) -> TuneResult:
    """Tune scale ``scale`` (default the last; upstream scales as configured) of ``cfg``:
    ``trials`` settings, the configured one (:func:`space.configured`, so tuning can only
    lose to the plain config by the noise of the choice) and ``trials - 1`` Sobol settings
    of ``space`` (default :func:`space.default_space`, seeded with ``seed``); successive
    halving by ``eta`` over ``rungs`` rungs, ``outer_folds`` outer splits.
    budget_minutes: after every rung but the last, the rest of the plan is projected from the
    seconds per setting-epoch so far (``clock``) and shrunk to fit (:func:`within_budget`);
    the last rung always runs, so the nested-CV figure is always produced. ensemble: K best
    settings per race scored by their mean prediction (module docstring). lengths: at the
    last rung every setting is also scored at shorter training lengths read from the same
    run (:func:`training_lengths`), and each race chooses a (setting, length) pair."""
    start = clock()
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ConfigError(f"tune --trials {trials}: use at least 1")
    _check_ensemble(ensemble, trials)
    check_lengths(lengths)
    if budget_minutes is not None and not budget_minutes > 0:
        raise ConfigError(f"tune --budget-minutes {budget_minutes}: use a positive number "
                          "of minutes")
    if outer_folds < 2:
        raise ConfigError(f"tune --outer-folds {outer_folds}: use at least 2 (the nested-CV "
                          "figure needs outer splits)")
    name = scale or cfg.scales[-1].name
    cfg = override(cfg, {f"{name}.scaler": "train", f"{name}.training.select": "last"})
    target = cfg.scale(name)
    metric = metric or default_metric(target)
    maximise = maximised(metric)
    space = space or default_space(target)
    settings = [configured(cfg, name, space), *(sample(space, trials - 1, seed)
                                                 if trials > 1 else [])]
    plan = _at_least(schedule(trials, target.training.epochs, eta, rungs), ensemble)
    alive = np.ones((len(settings), outer_folds + 1), bool)  # races: outer splits, final
    rows, n_models, work, checks, r = [], 0, 0, [], 0
    reuse, prepared, swept = {}, 0.0, 0.0  # upstream models and data: made at rung 0 only
    while True:  # the plan's tail may shrink after each rung (budget_minutes)
        rung, last = plan[r], r == len(plan) - 1
        idx = np.flatnonzero(alive.any(axis=1))
        if progress:
            progress(f"tune rung {r + 1}/{len(plan)}: {len(idx)} setting(s) x "
                     f"{rung.epochs} epochs")
        at = training_lengths(rung.epochs, lengths if last else 1,
                              target.training.chunk_epochs)
        cands = Candidates(np.repeat(idx, len(at)), np.tile(at, len(idx)),
                           np.repeat(alive[idx], len(at), axis=0))
        res = sweep(cfg, [{**settings[i], "training.epochs": rung.epochs} for i in idx],
                    scale=name, data_root=data_root, progress=progress, metric=metric,
                    devices=devices, outer_folds=outer_folds,
                    allowed=cands.alive[:, :outer_folds] if last else None,
                    ensemble=ensemble if last else 1, lengths=at, reuse=reuse)
        n_models += res.n_models
        prepared, swept = prepared + res.prepare_seconds, swept + res.seconds
        cand_scores = np.column_stack([res.inner_errors, res.runs[metric].to_numpy()])
        rows += _trial_rows(r, rung, cands, settings, cand_scores, metric)
        work += len(idx) * rung.epochs
        if last:
            break
        scores = np.full(alive.shape, np.nan)
        scores[idx] = cand_scores  # one length per setting before the last rung
        if budget_minutes is not None:
            def settings_after(keep: int) -> int:  # the next rung's, if each race keeps keep
                return int(survivors(scores, alive, keep, maximise).any(axis=1).sum())

            elapsed = clock() - start  # its share made once, on tune's clock:
            check = _budget_check(plan, r, elapsed, work, 60 * budget_minutes,
                                  outer_folds + 1, settings_after, ensemble,
                                  elapsed * prepared / max(swept, 1e-9))
            plan = plan[:r + 1] + check.pop("plan")
            checks.append(check)
            if progress:
                progress(check["note"])
        alive = survivors(scores, alive, plan[r + 1].keep, maximise)
        r += 1
    seconds = clock() - start
    budget = None if budget_minutes is None else {
        "minutes": budget_minutes, "spent_s": seconds, "within": seconds <= 60 * budget_minutes,
        "projected_s": checks[0]["seconds"] + checks[0]["projected_after_s"] if checks
        else None,
        "reduced": [c["note"] for c in checks if c["rungs_after"] != c["rungs_before"]],
        "checks": checks}
    picked = res.outer["setting"].to_numpy()  # candidates of the last rung
    final_scores, final_alive = cand_scores[:, -1:], cands.alive[:, -1:]
    finals = finite_members(top_k(final_scores, final_alive, ensemble, maximise),
                            final_scores, final_alive, "tune, the final choice on all rows")[0]
    final = finals[0]
    return TuneResult(name, metric, cfg, settings, plan, pd.DataFrame(rows),
                      cands.setting[picked], cands.epochs[picked], int(cands.setting[final]),
                      int(cands.epochs[final]), float(cand_scores[final, -1]), res.nested,
                      res.outer, res, n_models, seconds, budget,
                      _ensemble(res, cands, cand_scores, finals), space)


def _ensemble(res: SweepResult, cands: Candidates, scores: np.ndarray, finals: np.ndarray
              ) -> Ensemble | None:
    """The last rung's ensembles (None without --ensemble): each outer split's K best
    candidates (``res.nested``) and the final race's, ``finals``, with their plain-fold CV
    (``scores[:, -1]``); candidates that diverged are left out of each."""
    if "ensemble" not in res.nested:
        return None
    members = [np.asarray(m, np.int64) for m in res.nested["ensemble"]["chosen"]]
    return Ensemble(res.nested["ensemble"]["k"], [cands.setting[m] for m in members],
                    [cands.epochs[m] for m in members], cands.setting[finals],
                    cands.epochs[finals], scores[finals, -1], res.nested["ensemble"])


def _check_ensemble(k, trials: int) -> None:
    """tune --ensemble K: an integer from 1 to the settings sampled."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= trials:
        raise ConfigError(f"tune --ensemble {k}: use an integer from 1 to --trials ({trials})")


def _at_least(plan: list[Rung], k: int) -> list[Rung]:
    """``plan`` with every rung keeping at least ``k`` settings per race."""
    return [Rung(max(r.keep, k), r.epochs) for r in plan]


def _budget_check(plan: list[Rung], r: int, seconds: float, work: int, budget: float,
                  races: int, count: Callable[[int], int], floor: int = 1,
                  once: float = 0.0) -> dict:
    """After rung r (0-based; ``seconds`` so far for ``work`` setting-epochs, ``once`` of
    them spent on what later rungs reuse: the upstream models and data): the rest of
    ``plan`` within the ``budget`` seconds left (:func:`within_budget` at the rate of the
    other seconds; ``races``, ``count``, ``floor``: its arguments) and a record of the
    check: the projections before and after, the rungs before and after, whether it fits,
    and a note saying what was cut."""
    rest, rate, left = plan[r + 1:], (seconds - once) / work, budget - seconds
    before = projected_seconds(rest, count, races, rate)
    kept, after = within_budget(rest, count, races, rate, left, floor)
    note = (f"tune budget: rung {r + 1} done at {seconds:.1f} s of {budget:.0f} s"
            f"{' (the budget is spent)' if left <= 0 else ''}; the rest ({_plan_text(rest)}) "
            f"projected at {before:.1f} s")
    if kept != rest:
        note += f": cut to {_plan_text(kept)} ({after:.1f} s)"
    if after > left:  # within_budget's minimum plan
        note += (", over the budget: running the minimum plan all the same (the nested-CV "
                 "figure needs the last rung)")
    return {"after_rung": r, "seconds": seconds, "left_s": left, "projected_s": before,
            "projected_after_s": after, "fits": bool(after <= left), "note": note,
            "reused_s": once,
            "plan": kept, "rungs_before": [x._asdict() for x in rest],
            "rungs_after": [x._asdict() for x in kept]}


def _plan_text(plan: list[Rung]) -> str:
    """"3 per race x 27 epochs, 1 x 81" """
    return ", ".join(f"{x.keep}{' per race' if i == 0 else ''} x {x.epochs}"
                     f"{' epochs' if i == 0 else ''}" for i, x in enumerate(plan))


def _trial_rows(r: int, rung: Rung, cands: Candidates, settings: list[dict],
                scores: np.ndarray, metric: str) -> list[dict]:
    """trials.csv rows of one rung, one per candidate: the setting, its training length
    (``epochs``) and the epochs its training cost (``epochs_trained``: the rung's for the
    full length, 0 for a shorter length read from the same run), its plain-fold metric (all
    rows, ``scores[:, -1]``), its inner metric per outer split, and the races it was alive in
    on entering the rung."""
    k = cands.alive.shape[1] - 1
    out = []
    for c, (i, n) in enumerate(zip(cands.setting, cands.epochs)):
        row = {"rung": r, "epochs": int(n),
               "epochs_trained": rung.epochs if n == rung.epochs else 0, "setting": int(i),
               **settings[i], f"cv {metric}": scores[c, -1]}
        row.update({f"inner{o} {metric}": scores[c, o] for o in range(k)})
        row["alive_in"] = " ".join("final" if j == k else str(j)
                                   for j in np.flatnonzero(cands.alive[c]))
        out.append(row)
    return out


def tuned_document(result: TuneResult, data_root: str | None = None) -> dict:
    """The input config with the final setting (TOML-ready): data paths made absolute (as
    ``train`` resolves them, under ``data_root`` if given), so that ``nested-ae train
    tuned.toml`` trains it from any folder."""
    final = {**result.settings[result.final], "training.epochs": result.final_epochs}
    cfg = override(result.config, {f"{result.scale}.{k}": v for k, v in final.items()})
    doc = config_to_dict(cfg)
    config_dir = str(Path(cfg.source).parent) if cfg.source not in ("", "<config>") else None
    for spec in cfg.scales:
        if not datasets.is_reference(spec.data):
            doc["scales"][spec.name]["data"] = str(resolve_data_path(spec.data, config_dir,
                                                                     data_root))
    return doc


def summary(result: TuneResult) -> dict:
    """tune.json: per head of the tuned scale and per metric the sweep records (``heads``:
    {HEAD: {STAT: figure}}), the nested-CV figure of the settings chosen on ``metric``
    (:func:`_figure`: pooled outer, outer-fold mean, spread and values), all from the same
    outer models; the inner estimate of ``metric``, the setting chosen per outer split, the
    final setting and its plain-fold CV; for a chained scale the last rung's leaky-row counts
    (``nested_leaky_val_rows``: 0); with ``ensemble`` K > 1 (:func:`_ensemble_summary`) the
    ensembles' figure of every head, the K settings per outer split and the final K."""
    n = result.nested
    return {"scale": result.scale, "metric": result.metric,
            "heads": _heads(n["heads"], result.outer),
            "inner": n["inner"], "outer_folds": n["outer_folds"],
            "inner_folds": n["inner_folds"],
            "chosen_per_outer_split": [_setting(result, c, e)
                                       for c, e in zip(result.chosen, result.chosen_epochs)],
            "final": {**_setting(result, result.final, result.final_epochs),
                      "cv": result.final_cv},
            **({"chain": result.last.chain} if result.last.chain else {}),
            "trials": len(result.settings), "rungs": [r._asdict() for r in result.rungs],
            "models": result.n_models, "seconds": result.seconds,
            **({"budget": result.budget} if result.budget else {}),
            **({"ensemble": _ensemble_summary(result)} if result.ensemble else {})}


def _setting(result: TuneResult, i: int, epochs: int) -> dict:
    """{"setting": i, KEY: value, ..., "training.epochs": its training length}."""
    return {"setting": int(i), **result.settings[i], "training.epochs": int(epochs)}


def _heads(pooled: dict, folds: pd.DataFrame) -> dict:
    """{HEAD: {STAT: nested-CV figure}} from {HEAD.STAT: pooled outer value} and the outer
    folds' ``outer HEAD.STAT`` columns."""
    heads = {}
    for key, value in pooled.items():
        head, stat = key.rsplit(".", 1)
        heads.setdefault(head, {})[stat] = _figure(value, folds[f"outer {key}"].to_numpy())
    return heads


def _ensemble_summary(result: TuneResult) -> dict:
    """tune.json's "ensemble": K, the figure of every head (as "heads" of the single choice),
    the K settings of each outer split (best first) and the final K with their plain-fold CV."""
    e = result.ensemble
    folds = pd.DataFrame(e.nested["folds"])
    return {"k": e.k, "heads": _heads(e.nested["heads"], folds),
            "chosen": [c.tolist() for c in e.chosen],
            "chosen_epochs": [n.tolist() for n in e.chosen_epochs],
            "final": [{**_setting(result, i, n), "cv": float(cv)}
                      for i, n, cv in zip(e.final, e.final_epochs, e.final_cv)]}


def _figure(pooled: float, per_fold: np.ndarray) -> dict:
    """A nested-CV figure: the pooled outer value, the outer folds' mean, std and values."""
    return {"outer": float(pooled), "outer_fold_mean": float(per_fold.mean()),
            "outer_fold_std": float(per_fold.std(ddof=1)) if len(per_fold) > 1 else 0.0,
            "per_outer_fold": per_fold.tolist()}


def _ensemble_note(result: TuneResult) -> str:
    """tuned.toml's first line under --ensemble K > 1 (else empty): the final ensemble's
    settings; the file holds the single best of them."""
    if not result.ensemble:
        return ""
    members = ", ".join(f"{int(i)} ({int(n)} epochs)" for i, n in
                        zip(result.ensemble.final, result.ensemble.final_epochs))
    return (f"# tune --ensemble {result.ensemble.k}: the final ensemble is settings "
            f"{members} (tune.json, ensemble.final); this file is the best one, setting "
            f"{result.final} ({result.final_epochs} epochs); `nested-ae train --ensemble N` "
            "trains N seeds of it, not those settings\n")


def write_outputs(result: TuneResult, out: str | Path, data_root: str | None = None
                  ) -> list[Path]:
    """tune.json, tuned.toml, trials.csv and tune.png (the plain-fold metric against the
    budget spent and against each setting) under ``out`` (each written atomically)."""
    from .. import plots  # matplotlib, only when writing

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "tune.json", out / "tuned.toml", out / "trials.csv", out / "tune.png"]
    io.atomic_write_json(paths[0], summary(result))
    io.atomic_write_text(paths[1], _ensemble_note(result)
                         + io.dumps_toml(tuned_document(result, data_root)))
    io.atomic_write_csv(paths[2], result.trials)
    dims = result.space.dims if result.space else ()
    fig = plots.tune_figure(result.trials, metric=result.metric, keys=[d.key for d in dims],
                            log_keys=[d.key for d in dims if d.log],
                            maximise=maximised(result.metric),
                            title=f"nested-ae tune: scale {result.scale}")
    io.atomic_savefig(paths[3], fig)
    return paths


