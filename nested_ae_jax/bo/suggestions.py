"""Which candidates to measure next: ``nested-ae suggest``.

Real use of a trained run: the run's training rows of the objective's scale are the measured
set (rows with identical raw inputs merged, targets averaged), and the candidates are either
a pool of rows (``pool``: a table with the scale's raw columns, as for ``predict``) or the
design variables of ``nested-ae design`` (site fractions on their simplices x device
choices; ``pool=None``).

Spaces (``bo.chain``):

- ``latent``: a GP (``bo.gp``: Matern-5/2 ARD, hyper-parameters by marginal likelihood) on
  the chain's latents (the upstream scales' latents and the scale's own, of the first model,
  fed as in training) fitted to the measured rows' utilities. Here the chain was trained on
  the targets, which is fine: only measured rows' targets went in.
- ``raw``: the same GP on the raw input columns (categoricals one-hot), standardised.
- ``ensemble``: the run's own models: the mean and spread over every fold / ensemble member
  of the head (``TrainedChain.predictions``), no GP; needs more than one model.

Acquisitions (``bo.acquisition``, on the utility: y, -y or -|y - target|): ``ei`` (ranked
by its logarithm, finite where EI underflows), ``ucb`` (mean + sqrt(beta) std) and ``ts``
(Thompson sampling, GP and pool only). A batch of q: the kriging believer for ei / ucb with a
GP (pick, pretend its posterior mean was measured, refit the posterior, repeat), q joint
posterior draws for ts, the top q for the ensemble.

With a pool, candidates identical to a measured input row (all of the scale's raw input
columns equal) are never chosen: they are reported with ``measured`` True and no acquisition.
Without a pool, the acquisition (ei or ucb of the GP on the chain's latents or raw inputs, or
of the ensemble's mean and spread) is maximised by gradients through the chain, from many
starts at once (``design.optimise`` with a custom score); the batch is the q best distinct
candidates (no kriging believer over the continuous space).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import ConfigError, NestedAEError
from ..objectives import Objective
from . import acquisition as acq
from . import chain as bochain
from . import gp as gplib
from .campaign import utility, utility_normal


#: ``--space auto``: space -> the simulated method that stands for it. The latent space of a
#: run is its chain trained with the target on the measured rows, which the ``retrained``
#: method mimics (the objective scale refitted on the revealed rows); the run's own fold
#: models (``ensemble``) have no simulated counterpart, so that space is not a choice.
AUTO_SPACES = {"latent": "retrained", "raw": "raw"}


def _check(space: str, acquisition: str, pool: bool) -> None:
    if space not in (*bochain.SPACES, "auto"):
        raise ConfigError(f"--space {space}: use one of {', '.join(bochain.SPACES)} or auto")
    if acquisition not in acq.ACQUISITIONS:
        raise ConfigError(f"--acquisition {acquisition}: use one of {', '.join(acq.ACQUISITIONS)}")
    if acquisition == "ts" and (space == "ensemble" or not pool):
        raise ConfigError("--acquisition ts draws from a GP posterior over a pool: use it with "
                          "--pool and --space latent or raw (else ei or ucb)")


def measured_set(run, target: bochain.HeadObjective) -> pd.DataFrame:
    """The distinct measured candidates: the run's training rows of the objective's scale,
    identical raw inputs merged, targets averaged."""
    specs = run.config.specs
    frame = bochain.scale_frames(run.config, [target.scale])[target.scale]
    return bochain.candidate_pool(frame, specs, target, f"scale '{target.scale}' data")


@jax.jit
def _fit_gp(x, y, scaler, key):
    return gplib.fit_hyperparameters(x, y, jnp.ones(y.shape[0], bool), key,
                                     config=gplib.FitConfig(restarts=4, steps=200),
                                     x_scaler=scaler)


def choose_space(run, objective: str | Objective, *, trials: int = 20,
                 epochs: int | None = None, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> tuple[str, pd.DataFrame]:
    """``--space auto``: the GP space that found the best of the run's own data sooner in
    ``trials`` simulated campaigns per space (:func:`~nested_ae_jax.bo.simulation.simulate`
    on the run's config and data, :data:`AUTO_SPACES`: the latent space by the ``retrained``
    method, whose chain is trained ``epochs`` with the objective blinded and then refitted on
    each trial's revealed rows). The lower mean share wins, a tie goes to ``raw`` (nothing to
    train); 20 trials tell only clear differences apart. Returns (space, the evidence:
    ``bo.report.summary_table`` of the campaigns)."""
    from .report import results_frame, summary_table
    from .simulation import LABELS, simulate

    sim = simulate(run.config, objective, trials=trials, methods=list(AUTO_SPACES.values()),
                   epochs=epochs, seed=seed, progress=progress)
    table = summary_table(results_frame(sim.results))
    mean = dict(zip(table["method"], table["mean %"]))
    latent, raw = (mean[LABELS[m]] for m in AUTO_SPACES.values())
    return ("latent" if latent < raw else "raw"), table


def fit_gp(x: np.ndarray, y: np.ndarray, scaler: gplib.Standardizer, seed: int
           ) -> gplib.GPParams:
    """GP hyper-parameters for rows x (n, d), targets y (n,) (4 restarts, 200 Adam steps);
    one compiled program per shape."""
    return _fit_gp(jnp.asarray(x), jnp.asarray(y, jnp.float32), scaler, jax.random.PRNGKey(seed))


def suggest(run, objective: str | Objective, pool: pd.DataFrame | None = None, *, batch: int = 1,
            acquisition: str = "ei", space: str = "latent", beta: float = 2.0,
            seed: int = 0, starts: int = 256, steps: int = 200,
            exclude: Iterable[str] = (), fix: Any = None, constraints: Any = (),
            designer=None, source: str = "<pool>", auto_trials: int = 20,
            auto_epochs: int | None = None,
            progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The next ``batch`` candidates to measure for ``objective`` (an
    :class:`~nested_ae_jax.objectives.Objective` or its text: 'max:SCALE.HEAD',
    'min:SCALE.HEAD', 'target:SCALE.HEAD=VALUE') of a trained ``run`` (a ``TrainedChain``).

    pool: candidate rows with the scale's raw columns; None: design variables, optimised by
    gradients (``starts`` x ``steps``; ``exclude``, ``fix``, ``constraints`` as for ``design``;
    ``designer``: a built ``design.Designer`` of the run to reuse). space: latent, raw,
    ensemble, or auto (:func:`choose_space` with ``auto_trials`` campaigns per GP space, the
    honest chain trained ``auto_epochs``, default the config's; its evidence in
    ``attrs['suggest']['space_evidence']``). Returns the candidates with ``acquisition``,
    ``mean`` and ``std`` (the predicted SCALE.HEAD), ``rank`` (by acquisition), ``chosen`` (the
    batch) and ``pick`` (its order); chosen rows first. ``table.attrs['suggest']``: settings
    and timings.
    """
    _check(space, acquisition, pool is not None)
    if batch < 1:
        raise ConfigError("--batch must be >= 1")
    specs = run.config.specs
    target = bochain.parse_head_objective(objective, specs)
    say = progress or (lambda _: None)
    start = time.perf_counter()
    evidence = None
    if space == "auto":
        space, evidence = choose_space(run, target.objective, trials=auto_trials,
                                       epochs=auto_epochs, seed=seed, progress=progress)
        say(f"--space auto: {space}")
        _check(space, acquisition, pool is not None)
    measured = measured_set(run, target)
    y = measured[target.column].to_numpy(np.float32)
    say(f"measured: {len(measured)} distinct candidates of scale '{target.scale}'; "
        f"objective {target.describe()}")
    if pool is not None:
        table = _suggest_pool(run, target, measured, y, pool, batch=batch,
                              acquisition=acquisition, space=space, beta=beta, seed=seed,
                              source=source)
    else:
        table = _suggest_design(run, target, measured, y, batch=batch, acquisition=acquisition,
                                space=space, beta=beta, seed=seed, starts=starts, steps=steps,
                                exclude=exclude, fix=fix, constraints=constraints,
                                designer=designer)
    table.attrs["suggest"] = {
        "objective": target.describe(), "space": space, "acquisition": acquisition,
        **({"space_evidence": evidence.to_dict("records")} if evidence is not None else {}),
        "batch": batch, "measured": len(measured), "candidates": len(table),
        "seconds": time.perf_counter() - start, **table.attrs.get("suggest", {})}
    return table


# ---------------------------------------------------------------------------------------------
# a pool of rows


def _measured_rows(pool: pd.DataFrame, measured: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """(P,) bool: pool rows whose raw inputs equal a measured row's."""
    keys = measured[cols].drop_duplicates().assign(_measured=True)
    try:
        hit = pool[cols].merge(keys, on=cols, how="left")["_measured"]
    except ValueError:  # incompatible column types (e.g. text vs numbers): no row matches
        return np.zeros(len(pool), bool)
    return hit.fillna(False).to_numpy(bool)


def _pool_features(run, target, measured, pool, space, source):
    """Features of the measured rows (n, D) and the pool rows (P, D) in one call (one scaler
    refit for chain.transfer_scaler = refit)."""
    specs = run.config.specs
    cols = bochain.pool_columns(specs, target.scale)
    both = pd.concat([measured[cols], pool[cols]], ignore_index=True)
    n = len(measured)
    if space == "latent":
        predictions = run.predictions(both, scale=target.scale, source=source)
        x = bochain.latent_features(predictions, specs, target.scale)
    else:
        cats = {m: run.trained[m].categories for m in bochain.chain_scales(specs, target.scale)}
        x = bochain.frame_raw_features(both, specs, cats, target.scale, source)
    return x[:n], x[n:]


@jax.jit
def _gp_predict(params, x, y, x_query, scaler):
    mean, var = gplib.posterior(params, x, y, jnp.ones(len(y), bool), x_query, scaler)
    return mean, jnp.sqrt(var)


def _suggest_pool(run, target, measured, y, pool, *, batch, acquisition, space, beta, seed,
                  source) -> pd.DataFrame:
    specs = run.config.specs
    cols = bochain.pool_columns(specs, target.scale)
    missing = [c for c in cols if c not in pool.columns]
    if missing:
        from ..errors import DataError, did_you_mean

        raise DataError(f"{source}: column '{missing[0]}' (a raw input of scale "
                        f"'{target.scale}') is missing{did_you_mean(missing[0], pool.columns)}")
    if len(pool) == 0:
        raise NestedAEError(f"{source}: the pool has no rows")
    obj = target.objective
    seen = _measured_rows(pool, measured, cols)
    available = jnp.asarray(~seen)
    u = np.asarray(utility(obj, jnp.asarray(y)))
    best = jnp.asarray(u.max())
    score = acq.score_fn(acquisition, beta)
    key = jax.random.PRNGKey(seed)
    q = int(batch)

    if space == "ensemble":
        tgt = run.trained[target.scale]
        if len(tgt.models()) < 2:
            raise ConfigError(f"--space ensemble: scale '{target.scale}' of this run has one "
                              "model; it needs folds or training.ensemble > 1 (a spread)")
        predictions = run.predictions(pool[cols], scale=target.scale, source=source)
        mean_o, std_o = predictions[target.scale]
        mean = np.asarray(mean_o.heads[target.head], np.float32)[:, 0]
        std = np.asarray(std_o[target.head], np.float32)[:, 0]
        mean_u, std_u = utility_normal(obj, jnp.asarray(mean), jnp.asarray(std))
        values = score(mean_u, std_u, best)
        picks, valid = acq.select_top(values, available, q)
    else:
        x_meas, x_pool = _pool_features(run, target, measured, pool, space, source)
        scaler = gplib.fit_standardizer(jnp.asarray(np.concatenate([x_meas, x_pool])))
        params = fit_gp(x_meas, u, scaler, seed)
        xm, xp, uj = jnp.asarray(x_meas), jnp.asarray(x_pool), jnp.asarray(u, jnp.float32)
        mean_u, std_u = _gp_predict(params, xm, uj, xp, scaler)
        if obj.kind == "target":  # the head itself, for the mean / std columns
            params_y = fit_gp(x_meas, y, scaler, seed)
            mean, std = (np.asarray(a) for a in _gp_predict(params_y, xm, jnp.asarray(y), xp,
                                                            scaler))
        else:
            sign = 1.0 if obj.kind == "max" else -1.0
            mean, std = sign * np.asarray(mean_u), np.asarray(std_u)
        if acquisition == "ts":
            draws = jax.jit(lambda p, k: gplib.posterior_sample(
                p, xm, uj, jnp.ones(len(u), bool), xp, k, num=q, x_scaler=scaler))(params, key)
            values = draws[0]
            picks, valid = acq.thompson(draws, available)
        else:
            values = score(mean_u, std_u, best)
            n = len(u)

            @jax.jit
            def believer(params):
                def predict(picks, fantasies, j):
                    x2 = jnp.concatenate([xm, xp[picks]])
                    y2 = jnp.concatenate([uj, fantasies.astype(uj.dtype)])
                    mask = jnp.concatenate([jnp.ones(n, bool), jnp.arange(q) < j])
                    m, v = gplib.posterior(params, x2, y2, mask, xp, scaler)
                    return m, jnp.sqrt(v)

                return acq.kriging_believer(predict, score, available, best, q)

            picks, valid = believer(params)

    values = np.where(seen, np.nan, np.asarray(values, np.float64))
    out = pool.copy()
    out.insert(0, "pool_row", np.arange(len(pool)))
    out["acquisition"] = values
    out["mean"] = np.asarray(mean, np.float64)
    out["std"] = np.asarray(std, np.float64)
    out["measured"] = seen
    return _ranked(out, np.asarray(picks)[np.asarray(valid)])


def _ranked(out: pd.DataFrame, picks: np.ndarray) -> pd.DataFrame:
    """rank (1 = highest acquisition among the unmeasured candidates), chosen, pick; chosen
    rows first (in pick order), then by rank, measured rows last."""
    values = out["acquisition"].to_numpy(float)
    order = np.argsort(np.where(np.isnan(values), np.inf, -values), kind="stable")
    rank = np.empty(len(out))
    rank[order] = np.arange(1, len(out) + 1)
    out["rank"] = pd.array(np.where(np.isnan(values), pd.NA, rank), dtype="Int64")
    pick = np.zeros(len(out), int)
    pick[picks] = np.arange(1, len(picks) + 1)
    out["chosen"] = pick > 0
    out["pick"] = pd.array(np.where(pick > 0, pick, pd.NA), dtype="Int64")
    key = np.where(pick > 0, pick - len(out) - 1, np.nan_to_num(rank, nan=2 * len(out) + 1))
    return out.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# design variables


def _ensemble_score(d, target, u, score):
    """The acquisition (score_fn), the prediction of the target (predict) and their parameters
    under ``--space ensemble``: the spread of the last scale's models."""
    from ..design.objectives import DesignError

    obj = target.objective
    head = d.head_index(target.name)
    std_name = f"{target.name}.std"
    if std_name not in d.heads:
        raise DesignError(f"--space ensemble: no spread of {target.name} (the objective "
                          f"must be on the last scale, '{d.target}', with more than one "
                          "model)")
    head_std = d.heads.index(std_name)

    def predict(sp, dp, f, codes):
        heads, _ = d.forward(dp, f, codes)
        return heads[:, head], heads[:, head_std]

    def score_fn(sp, dp, f, codes):
        m, s = predict(sp, dp, f, codes)
        mu, su = utility_normal(obj, m, s)
        return score(mu, su, sp["best"])

    sp = {"best": jnp.asarray(u.max(), jnp.float32)}
    return score_fn, predict, sp


def _gp_score(run, d, target, measured, y, u, *, space, names, cats, score, seed):
    """The acquisition (score_fn), the prediction of the target (predict) and their parameters
    under ``--space latent`` or ``raw``: a GP on the measured rows' features, differentiable
    through the chain's features of a design."""
    specs = run.config.specs
    obj = target.objective
    sign = {"max": 1.0, "min": -1.0}.get(obj.kind, 0.0)
    inputs = run.inputs(measured, scale=target.scale, source="measured rows")
    if space == "latent":
        x_meas = np.asarray(d.latents_of_inputs(d.params, inputs, names))

        def features(dp, f, codes):
            return d.latents(dp, f, codes, names)
    else:
        x_meas = np.asarray(bochain.raw_features(inputs, specs, cats, target.scale))

        def features(dp, f, codes):
            return bochain.raw_features(d.raw_inputs(dp, f, codes), specs, cats,
                                        target.scale, xp=jnp)

    scaler = gplib.fit_standardizer(jnp.asarray(x_meas))
    ones = jnp.ones(len(u), bool)
    params = fit_gp(x_meas, u, scaler, seed)
    factors_u = gplib.posterior_factors(params, jnp.asarray(x_meas),
                                        jnp.asarray(u, jnp.float32), ones, scaler)
    factors_y = factors_u
    if obj.kind == "target":
        params_y = fit_gp(x_meas, y, scaler, seed)
        factors_y = gplib.posterior_factors(params_y, jnp.asarray(x_meas),
                                            jnp.asarray(y), ones, scaler)

    def score_fn(sp, dp, f, codes):
        m, var = gplib.posterior_at(sp["u"], features(dp, f, codes))
        return score(m, jnp.sqrt(var + 1e-12), sp["best"])

    def predict(sp, dp, f, codes):
        m, var = gplib.posterior_at(sp["y"], features(dp, f, codes))
        if obj.kind != "target":
            m = sign * m
        return m, jnp.sqrt(var)

    sp = {"u": factors_u, "y": factors_y, "best": jnp.asarray(u.max(), jnp.float32)}
    return score_fn, predict, sp


def _ranked_designs(table: pd.DataFrame, batch: int) -> pd.DataFrame:
    """The candidate table ranked by acquisition (feasible first), the first ``batch`` feasible
    ones chosen."""
    table = table.drop(columns=["score", "rank"])
    table = table.sort_values(["feasible", "acquisition"], ascending=[False, False],
                              kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    chosen = np.zeros(len(table), bool)
    chosen[:batch] = table["feasible"].to_numpy()[:batch]
    table["chosen"] = chosen
    table["pick"] = pd.array(np.where(chosen, np.arange(1, len(table) + 1), pd.NA),
                             dtype="Int64")
    return table


def _suggest_design(run, target, measured, y, *, batch, acquisition, space, beta, seed, starts,
                    steps, exclude, fix, constraints, designer) -> pd.DataFrame:
    from ..design import Designer, candidate_table, make_problem, optimise
    from ..design.objectives import DesignError

    d = designer if designer is not None else Designer(run)
    specs = run.config.specs
    names = bochain.chain_scales(specs, target.scale)
    if target.scale not in d.upto:
        raise DesignError(f"scale '{target.scale}' is not part of the designed chain "
                          f"({', '.join(d.upto)})")
    obj = target.objective
    problem = make_problem(d, target.name, constraints)
    v = d.variables(exclude, fix, None)
    u = np.asarray(utility(obj, jnp.asarray(y)))
    score = acq.score_fn(acquisition, beta)
    d.head_index(target.name)  # an unknown head is an error before anything is fitted
    cats = {n: run.trained[n].categories for n in names}

    if space == "ensemble":
        score_fn, predict, sp = _ensemble_score(d, target, u, score)
    else:
        score_fn, predict, sp = _gp_score(run, d, target, measured, y, u, space=space,
                                          names=names, cats=cats, score=score, seed=seed)

    res = optimise(d, problem, v, starts=starts, steps=steps, seed=seed, score_fn=score_fn,
                   score_params=sp)
    evaluate = jax.jit(lambda sp, dp, f, c: (score_fn(sp, dp, f, c), *predict(sp, dp, f, c)))
    values, mean, std = (np.asarray(a, np.float64) for a in evaluate(
        sp, d.params, jnp.asarray(res.fractions, jnp.float32), jnp.asarray(res.codes)))
    table = candidate_table(d, problem, v, res.fractions, res.codes, evaluated=res.evaluated,
                            extra={"acquisition": values, "mean": mean, "std": std})
    table = _ranked_designs(table, batch)
    table.attrs["suggest"] = {"starts": starts, "steps": steps, "compile_s": res.compile_s,
                              "optimise_s": res.run_s}
    return table
