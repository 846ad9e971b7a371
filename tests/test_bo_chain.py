"""Bayesian optimisation on trained chains: honest feature maps, the ``campaign`` and
``suggest`` commands.

A small two-scale chain: scale ``up`` (numeric a, b, c -> head y1 = a + b), scale ``down``
(up's latent + a 3-class column k -> head z). The down file repeats some input rows (the pool
merges them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nested_ae_jax import bo
from nested_ae_jax.bo import chain as bochain
from nested_ae_jax.config import parse_config
from test_design import SPACE, chain_run  # noqa: F401  (the hand-built design chain)

TRAINING = {"epochs": 5, "batch_size": 16, "chunk_epochs": 5, "checkpoint_every": 0}


def chain_doc(tmp, cv=None) -> dict:
    cv = cv or {"kind": "kfold", "n_splits": 2}
    return {"chain": {"split": "independent"}, "scales": {
        "up": {"data": str(tmp / "up.csv"),
               "inputs": {"x": {"kind": "numeric", "columns": ["a", "b", "c"]}},
               "encoder": {"latent_size": 2},
               "heads": {"y1": {"kind": "regression", "target": "y1", "hidden": [4]},
                         "x": {"kind": "reconstruction", "input": "x"}},
               "training": TRAINING, "cv": cv},
        "down": {"data": str(tmp / "down.csv"),
                 "inputs": {"up_latent": {"kind": "latent", "scale": "up"},
                            "k": {"kind": "categorical", "column": "k"}},
                 "encoder": {"latent_size": 2},
                 "heads": {"z": {"kind": "regression", "target": "z", "hidden": [4]},
                           "k": {"kind": "categorical", "input": "k"}},
                 "training": TRAINING, "cv": cv}}}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bo_chain")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y1": x[:, 0] + x[:, 1]}).to_csv(
        tmp / "up.csv", index=False)
    rows = np.concatenate([np.arange(40), rng.integers(0, 40, 20)])
    k = np.array(["p", "q", "r"])[rng.integers(0, 3, 60)]
    k[40:] = k[rows[40:]]  # 20 repeated recipes: 40 distinct candidates, some measured twice
    xd = x[rows]
    z = xd[:, 0] - xd[:, 1] ** 2 + (k == "q") + 0.1 * rng.normal(size=60)
    pd.DataFrame({"a": xd[:, 0], "b": xd[:, 1], "c": xd[:, 2], "k": k, "z": z}).to_csv(
        tmp / "down.csv", index=False)
    (tmp / "chain.toml").write_text(toml(chain_doc(tmp)))
    return tmp


def toml(doc: dict) -> str:
    """A minimal TOML writer for the config dicts here."""
    def value(v):
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = []

    def table(prefix, t):
        plain = {k: v for k, v in t.items() if not isinstance(v, dict)}
        if plain or not prefix:
            lines.append(f"[{prefix}]" if prefix else "")
            lines.extend(f"{k} = {value(v)}" for k, v in plain.items())
        for k, v in t.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", doc)
    return "\n".join(lines) + "\n"


def test_posterior_factors_equal_the_posterior():
    """Precomputed factors (used to maximise an acquisition by gradients) give the posterior,
    and its gradient in the query is finite."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 3)).astype(np.float32)
    y = np.sin(x.sum(1)).astype(np.float32)
    mask = np.arange(12) < 10
    params = bo.default_params(3)._replace(log_lengthscale=jnp.log(jnp.array([0.7, 1.2, 2.0])))
    scaler = bo.fit_standardizer(x)
    xq = rng.normal(size=(5, 3)).astype(np.float32)
    want = bo.posterior(params, x, y, mask, xq, scaler)
    got = bo.posterior_at(bo.posterior_factors(params, x, y, mask, scaler), xq)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    factors = bo.posterior_factors(params, x, y, mask, scaler)
    g = jax.grad(lambda q: bo.posterior_at(factors, q)[0].sum())(jnp.asarray(xq))
    assert np.isfinite(np.asarray(g)).all()


# ---------------------------------------------------------------------------------------------
# honest feature maps


def test_objective_parsing_and_pool(files):
    cfg = parse_config(chain_doc(files), str(files / "c.toml"))
    specs = {s.name: s for s in cfg.scales}
    with pytest.raises(Exception, match="weight has no effect"):
        bochain.parse_head_objective("max:2*down.z", specs)
    t = bochain.parse_head_objective("target=1.5:down.z", specs)
    assert t.objective == bo.Objective("down.z", "target", 1.0, 1.5)
    assert (t.scale, t.column) == ("down", "z")
    assert bochain.parse_head_objective("min:up.y1", specs).objective.kind == "min"
    for bad in ("max:down.k", "max:side.z", "max:down.w", "best:down.z"):
        with pytest.raises(Exception, match="objective|use 'max'"):
            bochain.parse_head_objective(bad, specs)
    frame = pd.read_csv(files / "down.csv")
    pool = bochain.candidate_pool(frame, specs, t)
    assert len(pool) == 40 and pool["rows"].sum() == 60
    assert list(pool.columns[:4]) == ["k", "a", "b", "c"]
    raw = bochain.frame_raw_features(pool, specs, bochain.pool_categories(pool, specs, "down"),
                                     "down")
    assert raw.shape == (40, 6)  # a, b, c + one-hot of 3 classes
    np.testing.assert_array_equal(raw[:, 3:].sum(1), 1.0)


def test_honest_config_blinds_the_target_heads(files):
    cfg = parse_config(chain_doc(files), str(files / "c.toml"))
    down = bochain.parse_head_objective("max:down.z", {s.name: s for s in cfg.scales})
    honest = bochain.honest_config(cfg, down, epochs=3)
    weights = {(s.name, h.name): h.weight for s in honest.scales for h in s.heads}
    assert weights == {("up", "y1"): 1.0, ("up", "x"): 1.0, ("down", "z"): 0.0,
                       ("down", "k"): 1.0}
    assert all(s.cv.kind == "none" and s.training.epochs == 3 for s in honest.scales)
    up = bochain.parse_head_objective("max:up.y1", {s.name: s for s in cfg.scales})
    assert [s.name for s in bochain.honest_config(cfg, up).scales] == ["up"]


@pytest.mark.parametrize("objective", ["max:down.z", "target=0.5:up.y1"])
def test_latent_map_never_sees_the_target(files, objective):
    """The honest chain built with the real targets and with shuffled ones gives the same
    features, bit for bit (and they are features: they vary over the pool)."""
    cfg = parse_config(chain_doc(files), str(files / "c.toml"))
    specs = {s.name: s for s in cfg.scales}
    target = bochain.parse_head_objective(objective, specs)
    frames = {n: pd.read_csv(files / f"{n}.csv") for n in specs}
    pool = bochain.candidate_pool(frames[target.scale], specs, target)
    shuffled = dict(frames)
    rng = np.random.default_rng(7)
    shuffled[target.scale] = frames[target.scale].assign(
        **{target.column: rng.permutation(frames[target.scale][target.column].to_numpy())
           * 3.0 + 11.0})
    real = bochain.honest_latents(cfg, target, pool, frames=frames)
    blind = bochain.honest_latents(cfg, target, pool, frames=shuffled)
    np.testing.assert_array_equal(real, blind)
    width = 4 if target.scale == "down" else 2
    assert real.shape == (len(pool), width) and (real.std(0) > 1e-4).all()


def test_ensemble_surrogate_sees_no_unrevealed_target(files):
    """The per-round deep ensemble: replacing every target a trial never revealed by garbage
    (below the best) leaves that trial's picks unchanged; and it learns (beats random on a
    smooth pool)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (48, 2)).astype(np.float32)
    y = (-(x ** 2).sum(1)).astype(np.float32)
    surrogate = bo.mlp_ensemble(x, bo.EnsembleConfig(members=3, steps=30))
    kw = dict(surrogate=surrogate, trials=2, init=3, seed=1, buffers=[50])
    first = bo.run_campaign(bo.ensemble_method("ucb"), y, **kw)
    for t in range(2):
        seen = first.order[t][first.order[t] >= 0]
        garbage = y.copy()
        hidden = np.setdiff1d(np.arange(48), seen)
        garbage[hidden] = rng.uniform(-50, y.max() - 1e-3, hidden.size)
        again = bo.run_campaign(bo.ensemble_method("ucb"), garbage, **kw)
        np.testing.assert_array_equal(again.order[t], first.order[t])
    assert first.found.all() and first.share.mean() < 0.4


# ---------------------------------------------------------------------------------------------
# the campaign command


def test_campaign_cli_writes_every_method(files, capsys):
    from nested_ae_jax.cli import main

    out = files / "campaign"
    assert main(["campaign", str(files / "chain.toml"), "--objective", "max:down.z",
                 "--trials", "8", "--init", "3", "--epochs", "5", "--relearn-every", "4",
                 "--relearn-epochs", "3", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    for label in ("latent GP (retrained)", "latent GP", "raw GP", "ensemble", "random"):
        assert label in printed
    frame = pd.read_csv(out / "campaign.csv")
    assert frame.groupby("method").size().to_dict() == {
        "latent GP (retrained)": 8, "latent GP": 8, "raw GP": 8, "ensemble": 8, "random": 8}
    assert frame["found"].all() and (frame["pool"] == 40).all()
    assert ((frame["share"] > 0) & (frame["share"] <= 1)).all()
    assert "| latent GP | 8 | 8 |" in (out / "summary.md").read_text()
    assert (out / "campaign_box.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(out / "pool.csv")) == 40


# ---------------------------------------------------------------------------------------------
# the suggest command


@pytest.fixture(scope="module")
def trained_run(files):
    from nested_ae_jax.runner import fit_config
    from nested_ae_jax.chain import load as load_chain
    from nested_ae_jax.store import prepare_out_dir, write_run

    cfg = parse_config(chain_doc(files), str(files / "chain.toml"))
    out = prepare_out_dir(files / "run")
    write_run(fit_config(cfg), out)
    return load_chain(out)


@pytest.fixture(scope="module")
def pool(files):
    """12 candidates: 4 already measured recipes (rows of down.csv) and 8 new ones."""
    rng = np.random.default_rng(5)
    measured = pd.read_csv(files / "down.csv").iloc[[0, 3, 41, 7]].drop(columns="z")
    new = pd.DataFrame({"a": rng.normal(size=8), "b": rng.normal(size=8),
                        "c": rng.normal(size=8), "k": rng.choice(["p", "q", "r"], 8)})
    return pd.concat([new.iloc[:3], measured, new.iloc[3:]], ignore_index=True)


@pytest.mark.parametrize("space,acquisition", [("latent", "ei"), ("raw", "ts"),
                                               ("ensemble", "ucb")])
def test_suggest_pool_picks_distinct_unmeasured_rows(trained_run, pool, space, acquisition):
    table = bo.suggest(trained_run, "max:down.z", pool, batch=3, space=space,
                       acquisition=acquisition)
    assert len(table) == len(pool) and sorted(table["pool_row"]) == list(range(len(pool)))
    chosen = table[table["chosen"]]
    assert len(chosen) == 3 and chosen["pool_row"].is_unique
    assert list(chosen["pick"]) == [1, 2, 3] and list(table.index[table["chosen"]]) == [0, 1, 2]
    measured = table[table["measured"]]
    assert sorted(measured["pool_row"]) == [3, 4, 5, 6]  # never chosen, no acquisition
    assert not measured["chosen"].any() and measured["acquisition"].isna().all()
    free = table[~table["measured"]]
    assert np.isfinite(free[["acquisition", "mean", "std"]].to_numpy()).all()
    assert sorted(free["rank"]) == list(range(1, 9))
    if acquisition != "ts":  # the first pick is the best acquisition
        assert chosen.iloc[0]["rank"] == 1


def test_suggest_cli_with_pool(trained_run, pool, files, capsys):
    from nested_ae_jax.cli import main

    pool.to_csv(files / "candidates.csv", index=False)
    out = files / "next.csv"
    assert main(["suggest", str(trained_run.path), "--pool", str(files / "candidates.csv"),
                 "--target", "down.z=0.5", "--batch", "2", "--acquisition", "ucb",
                 "--out", str(out), "--quiet"]) == 0
    assert "2 chosen of 12 candidates" in capsys.readouterr().out
    table = pd.read_csv(out)
    assert table["chosen"].sum() == 2 and {"a", "b", "c", "k", "mean", "std"} <= set(table)


@pytest.mark.parametrize("space", ["latent", "raw", "ensemble"])
def test_suggest_without_pool_designs_compositions(chain_run, space):  # noqa: F811
    d = chain_run
    table = bo.suggest(d.run, "max:device.eff", batch=3, space=space, starts=32, steps=40,
                       designer=d)
    sums = np.stack([table[["Ka", "Kb"]].sum(axis=1), table[["Xa", "Xb", "Xc"]].sum(axis=1)], 1)
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)
    chosen = table[table["chosen"]]
    assert len(chosen) == 3 and list(chosen["pick"]) == [1, 2, 3]
    assert (table["acquisition"].diff().dropna() <= 1e-9).all()
    assert np.isfinite(table[["acquisition", "mean", "std"]].to_numpy()).all()
    assert {"formula", "layer", "device.eff", "feasible"} <= set(table.columns)


def test_suggest_space_auto_takes_the_space_that_won_its_simulated_campaigns(trained_run, pool,
                                                                           files, capsys):
    """--space auto: simulated campaigns of the latent GP (the retrained method) and the raw
    GP on the run's own data; the lower mean share is the space used, and the evidence is
    printed and kept."""
    import re

    from nested_ae_jax.bo.suggestions import choose_space
    from nested_ae_jax.cli import main

    pool.to_csv(files / "candidates_auto.csv", index=False)
    out = files / "next_auto.csv"
    assert main(["suggest", str(trained_run.path), "--pool", str(files / "candidates_auto.csv"),
                 "--maximize", "down.z", "--space", "auto", "--auto-trials", "4",
                 "--auto-epochs", "5", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    shares = {m: float(v) for m, v in
              re.findall(r"--space auto: (latent GP \(retrained\)|raw GP): mean share ([\d.]+)",
                         printed)}
    assert set(shares) == {"latent GP (retrained)", "raw GP"}
    expected = "latent" if shares["latent GP (retrained)"] < shares["raw GP"] else "raw"
    assert f"({expected} space," in printed
    space, evidence = choose_space(trained_run, "max:down.z", trials=4, epochs=5)
    assert space == expected and list(evidence["trials"]) == [4, 4]
