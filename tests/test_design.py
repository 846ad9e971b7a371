"""Inverse design on a small hand-built chain whose optimum is known.

Chain: scale ``atomic`` reads two composition descriptors A_p, X_p (site A: ions Ka, Kb with
p = 0, 1; site X: Xa, Xb, Xc with p = 0, 1, 2), latent = (A_p, X_p), head gap = X_p. Scale
``device`` takes that latent and a 3-class categorical ``layer`` (p, q, r); its two fold models
give eff = -|A_p - 0.3| + bonus[layer], bonus = (0, 1, 0.5) and (0, 1.1, 0.5). So eff is
largest (1.05 on average over the folds, std 0.05) at Kb = 0.3 with layer q, for any X site.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from nested_ae_jax import design as D
from nested_ae_jax.composition import CompositionSpace
from nested_ae_jax.config import parse_config
from nested_ae_jax.data import Categories
from nested_ae_jax.model import ScaleDims, scale_model
from nested_ae_jax.nesting import identity_stats
from nested_ae_jax.chain import TrainedChain
from nested_ae_jax.trained import TrainedScale

STARTS, STEPS = 96, 200
SPACE = CompositionSpace(sites=(("A", ("Ka", "Kb")), ("X", ("Xa", "Xb", "Xc"))),
                         properties=("p",), table=np.array([[0.0], [1.0], [0.0], [1.0], [2.0]]))


def _dense(w, b=None):
    w = jnp.asarray(w, jnp.float32)
    return {"kernel": w,
            "bias": jnp.zeros(w.shape[1]) if b is None else jnp.asarray(b, jnp.float32)}


def _net(*layers):
    """The flax variables of a built-in network with these Dense layers."""
    return {"params": {f"Dense_{i}": layer for i, layer in enumerate(layers)}}


def _stack(*trees):
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _loaded(model, params_per_fold, categories, feeders=None):
    params = _stack(*params_per_fold)
    stats = _stack(*[identity_stats(model)] * len(params_per_fold))
    n = len(params_per_fold)
    return TrainedScale(model, categories, params, stats, np.zeros(1, int), n, False,
                        feeders or {})


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("design")
    rng = np.random.default_rng(0)
    # training data (used only for the out-of-domain reference): random compositions
    fa = rng.dirichlet(np.ones(2), 30)
    fx = rng.dirichlet(np.ones(3), 30)
    a_p, x_p = fa[:, 1], fx[:, 1] + 2 * fx[:, 2]
    pd.DataFrame({"A_p": a_p, "X_p": x_p, "gap": x_p}).to_csv(tmp / "atomic.csv", index=False)
    layer = np.array(["p", "q", "r"])[rng.integers(0, 3, 30)]
    pd.DataFrame({"A_p": a_p, "X_p": x_p, "layer": layer, "eff": a_p}).to_csv(
        tmp / "device.csv", index=False)
    cfg = parse_config({"scales": {
        "atomic": {"data": str(tmp / "atomic.csv"),
                   "inputs": {"descriptors": {"kind": "numeric", "columns": ["A_p", "X_p"]}},
                   "encoder": {"latent_size": 2, "latent_activation": "linear"},
                   "heads": {"gap": {"kind": "regression", "target": "gap"},
                             "descriptors": {"kind": "reconstruction", "input": "descriptors"}},
                   "cv": {"kind": "kfold", "n_splits": 2}},
        "device": {"data": str(tmp / "device.csv"),
                   "inputs": {"atomic_latent": {"kind": "latent", "scale": "atomic"},
                              "layer": {"kind": "categorical", "column": "layer"}},
                   "encoder": {"latent_size": 2, "latent_activation": "linear"},
                   "heads": {"eff": {"kind": "regression", "target": "eff", "hidden": [4]}},
                   "cv": {"kind": "kfold", "n_splits": 2}}}})
    atomic = scale_model(cfg.scale("atomic"), ScaleDims((("descriptors", 2),),
                                                        (("gap", 1), ("descriptors", 2))))
    device = scale_model(cfg.scale("device"), ScaleDims((("atomic_latent", 2), ("layer", 3)),
                                                        (("eff", 1),)))
    p_atomic = {"encoder": _net(_dense(np.eye(2))),
                "heads": {"gap": _net(_dense([[0.0], [1.0]])),
                          "descriptors": _net(_dense(np.eye(2)))}}

    def p_device(bonus):
        enc = np.zeros((5, 2))
        enc[0, 0] = 1.0          # l0 = A_p
        enc[2:, 1] = bonus       # l1 = bonus[layer]
        hidden = _dense([[1, -1, 0, 0], [0, 0, 1, -1]], [-0.3, 0.3, 0, 0])
        return {"encoder": _net(_dense(enc)),
                "heads": {"eff": _net(hidden, _dense([[-1.0], [-1.0], [1.0], [-1.0]]))}}

    scales = {"atomic": _loaded(atomic, [p_atomic, p_atomic], Categories({}, {})),
              "device": _loaded(device, [p_device([0, 1, 0.5]), p_device([0, 1.1, 0.5])],
                                Categories({"layer": ("p", "q", "r")}, {}),
                                {"atomic": np.zeros((2, 1), int)})}  # atomic fold 0 feeds
    run = TrainedChain(cfg, scales, tmp)
    return D.Designer(run, SPACE)


def _site_sums(table):
    return np.stack([table[["Ka", "Kb"]].sum(axis=1), table[["Xa", "Xb", "Xc"]].sum(axis=1)], 1)


def test_known_optimum(chain_run):
    d = chain_run
    assert d.heads == ["atomic.gap", "device.eff", "device.eff.std"]
    t = D.design(d, "device.eff", starts=STARTS, steps=STEPS, seed=0)
    best = t.iloc[0]
    assert best["feasible"] and best["rank"] == 1
    assert best["layer"] == "q"
    assert abs(best["Kb"] - 0.3) <= 0.011
    assert best["device.eff"] == pytest.approx(1.05, abs=0.012)
    assert best["device.eff.std"] == pytest.approx(0.05, abs=1e-3)
    assert np.abs(_site_sums(t) - 1).max() <= 1e-6
    assert t["score"].is_monotonic_decreasing
    # every layer is explored (starts spread over the combinations)
    assert set(t["layer"]) == {"p", "q", "r"}
    for col in ("ood.distance.atomic", "ood.distance.device", "ood.recon.atomic", "ood.score"):
        assert col in t.columns and np.isfinite(t[col]).all()


def test_weighted_target_and_exclusion(chain_run):
    # eff wants Kb = 0.3; gap = Xb + 2 Xc hits 0.7 only at Xb = 0.7 once Xc is excluded
    t = D.design(chain_run, ["device.eff", "target:2*atomic.gap=0.7"], exclude=["Xc"],
                 starts=STARTS, steps=STEPS, seed=1)
    best = t.iloc[0]
    assert (t["Xc"] == 0).all()
    assert abs(best["Xb"] - 0.7) <= 0.011 and abs(best["Kb"] - 0.3) <= 0.011
    assert best["score"] == pytest.approx(1.05, abs=0.03)


def test_bounds_hold_or_flagged(chain_run):
    t = D.design(chain_run, "atomic.gap", ["atomic.gap<=1.2", "device.eff>=0.9"],
                 starts=STARTS, steps=STEPS, seed=2)
    ok = (t["atomic.gap"] <= 1.2) & (t["device.eff"] >= 0.9)
    assert (t["feasible"] == ok).all()
    assert (t.loc[~ok, "violation"] > 0).all() and (t.loc[ok, "violation"] == 0).all()
    best = t.iloc[0]
    assert best["feasible"] and 1.15 <= best["atomic.gap"] <= 1.2   # active bound
    assert t["feasible"].iloc[: t["feasible"].sum()].all()          # feasible ranked first
    # an impossible bound: nothing feasible, every row flagged
    t = D.design(chain_run, "device.eff", ["atomic.gap>=2.5"], starts=STARTS, steps=STEPS)
    assert not t["feasible"].any() and (t["violation"] > 0).all()


def test_fix_cap_and_choices(chain_run):
    t = D.design(chain_run, "device.eff", fix=["A=Ka", "layer=r"], max_ions_per_site=1,
                 starts=STARTS, steps=STEPS)
    assert (t["Ka"] == 1).all() and (t["Kb"] == 0).all() and (t["layer"] == "r").all()
    assert ((t[["Xa", "Xb", "Xc"]] > 0).sum(axis=1) == 1).all()
    assert t.iloc[0]["device.eff"] == pytest.approx(0.5 - 0.3, abs=1e-3)
    t = D.design(chain_run, "atomic.gap", exclude=["q"], max_ions_per_site=2,
                 starts=STARTS, steps=STEPS)
    assert "q" not in set(t["layer"])
    assert ((t[["Xa", "Xb", "Xc"]] > 0).sum(axis=1) <= 2).all()


def test_errors(chain_run):
    with pytest.raises(D.DesignError, match="unknown head 'device.ef'.*device.eff"):
        D.design(chain_run, "device.ef", starts=4, steps=2)
    with pytest.raises(D.DesignError, match="not an ion"):
        D.design(chain_run, "device.eff", exclude=["Pb"], starts=4, steps=2)
    with pytest.raises(D.DesignError, match="every ion of site A"):
        D.design(chain_run, "device.eff", exclude=["Ka", "Kb"], starts=4, steps=2)
    with pytest.raises(D.DesignError, match="no feasible value"):
        D.design(chain_run, "device.eff", ["atomic.gap>=2", "atomic.gap<=1"], starts=4, steps=2)
    with pytest.raises(D.DesignError, match="no objective"):
        D.design(chain_run, None)
    with pytest.raises(D.DesignError, match="expected"):
        D.parse_constraint("atomic.gap=>1")


def test_parsing():
    assert D.parse_objective("2*device.pce", "min") == D.Objective("device.pce", "min", 2.0)
    assert D.parse_objective("atomic.gap=1.4", "target") == \
        D.Objective("atomic.gap", "target", 1.0, 1.4)
    assert D.parse_constraint("atomic.gap>=1.2") == D.Constraint("atomic.gap", 1.2, None)
    assert D.parse_constraint("atomic.gap <= 1.6") == D.Constraint("atomic.gap", None, 1.6)
    assert D.parse_constraint("1.2<=atomic.gap<=1.6") == D.Constraint("atomic.gap", 1.2, 1.6)


def test_baselines_and_pareto(chain_run, tmp_path):
    r = D.random_search(chain_run, "device.eff", evaluations=4000, seed=0, keep=64)
    assert r.iloc[0]["feasible"] and r.iloc[0]["device.eff"] <= 1.05 + 1e-6
    lat = D.latent_sampling(chain_run, "device.eff", evaluations=4000, decode=64, seed=0)
    assert "latent.device.eff" in lat.columns and np.abs(_site_sums(lat) - 1).max() <= 1e-6
    front, cands = D.pareto_front(chain_run, "min:atomic.gap", "max:device.eff",
                                  starts=STARTS, steps=STEPS, bands=4)
    assert len(front) >= 1 and front["atomic.gap"].is_monotonic_increasing
    assert front["device.eff"].max() == pytest.approx(1.05, abs=0.02)
    # no front point is dominated by any feasible candidate
    feas = cands[cands["feasible"]]
    for _, p in front.iterrows():
        assert not ((feas["atomic.gap"] <= p["atomic.gap"] - 1e-9) &
                    (feas["device.eff"] >= p["device.eff"] + 1e-9)).any()
    csv, png = D.write_pareto(front, cands, "atomic.gap", "device.eff", tmp_path / "front")
    assert pd.read_csv(csv).shape[0] == len(front)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli(chain_run, tmp_path, monkeypatch, capsys):
    from nested_ae_jax.cli import build_parser

    out = tmp_path / "candidates.csv"
    args = build_parser().parse_args(["design", "RUN", "--maximize", "device.eff", "--constraint",
                              "atomic.gap>=0.5", "--constraint", "atomic.gap<=1.5",
                              "--exclude", "Xc", "--starts", str(STARTS), "--steps", str(STEPS),
                              "--out", str(out), "--top", "3", "--fix", "layer=q"])
    monkeypatch.setattr("nested_ae_jax.chain.load", lambda path, stage=None: chain_run.run)
    class Reuse(D.Designer):  # the CLI builds a Designer: hand it the compiled one
        def __new__(cls, run, space=None):
            return chain_run
    monkeypatch.setattr(D, "Designer", Reuse)
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "device.eff" in printed and "feasible" in printed
    table = pd.read_csv(out)
    assert {"Ka", "Kb", "Xa", "Xb", "Xc", "layer", "atomic.gap", "device.eff",
            "device.eff.std", "feasible"} <= set(table.columns)
    assert (table["Xc"] == 0).all() and (table["layer"] == "q").all()


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    """A tiny really trained chain (atomic -> device), every scale an ensemble of 2 members x
    2 folds, saved and loaded back: 4 chain copies behind every design prediction."""
    from nested_ae_jax.runner import fit_config
    from nested_ae_jax.chain import load as load_chain
    from nested_ae_jax.store import prepare_out_dir, write_run

    tmp = tmp_path_factory.mktemp("design_ensemble")
    rng = np.random.default_rng(3)
    fa, fx = rng.dirichlet(np.ones(2), 40), rng.dirichlet(np.ones(3), 40)
    desc = SPACE.descriptors(np.concatenate([fa, fx], 1), ["A_p", "X_p"])
    a_p, x_p = desc[:, 0], desc[:, 1]
    pd.DataFrame({"A_p": a_p, "X_p": x_p, "gap": x_p + 0.3 * a_p}).to_csv(
        tmp / "atomic.csv", index=False)
    layer = np.array(["p", "q", "r"])[rng.integers(0, 3, 40)]
    eff = -np.abs(a_p - 0.3) + np.select([layer == "q", layer == "r"], [1.0, 0.5], 0.0)
    pd.DataFrame({"A_p": a_p, "X_p": x_p, "layer": layer, "eff": eff}).to_csv(
        tmp / "device.csv", index=False)
    training = {"epochs": 5, "batch_size": 16, "chunk_epochs": 5, "checkpoint_every": 0,
                "ensemble": 2}
    cfg = parse_config({"scales": {
        "atomic": {"data": str(tmp / "atomic.csv"),
                   "inputs": {"descriptors": {"kind": "numeric", "columns": ["A_p", "X_p"]}},
                   "encoder": {"latent_size": 2},
                   "heads": {"gap": {"kind": "regression", "target": "gap", "hidden": [4]},
                             "descriptors": {"kind": "reconstruction", "input": "descriptors"}},
                   "training": training, "cv": {"kind": "kfold", "n_splits": 2}},
        "device": {"data": str(tmp / "device.csv"),
                   "inputs": {"atomic_latent": {"kind": "latent", "scale": "atomic"},
                              "layer": {"kind": "categorical", "column": "layer"}},
                   "encoder": {"latent_size": 2},
                   "heads": {"eff": {"kind": "regression", "target": "eff", "hidden": [4]}},
                   "training": training, "cv": {"kind": "kfold", "n_splits": 2}}}},
        str(tmp / "c.toml"))
    out = prepare_out_dir(tmp / "run")
    write_run(fit_config(cfg), out)
    return load_chain(out)


def test_ensemble_design_agrees_with_predict(ensemble_run):
    # design and predict both average every fold of every ensemble member (trained.chain_copies)
    from nested_ae_jax.predict import predict_frame

    run = ensemble_run
    assert run.trained["device"].members == 2 and len(run.trained["device"].models()) == 4
    d = D.Designer(run, SPACE)
    assert d.heads == ["atomic.gap", "device.eff", "device.eff.std"]
    t = D.design(d, "device.eff", ["atomic.gap<=1.5"], starts=16, steps=20, seed=0)
    top = t.head(6)
    fractions = top[list(SPACE.ions)].to_numpy()
    desc = SPACE.descriptors(fractions, ["A_p", "X_p"])
    np.testing.assert_allclose(desc, fractions @ np.asarray(d.params["W"]["atomic/descriptors"]),
                               rtol=1e-6, atol=1e-6)
    frame = pd.DataFrame({"A_p": desc[:, 0], "X_p": desc[:, 1],
                          "layer": top["layer"].to_numpy()})
    pred = predict_frame(run, frame)
    for head in ("atomic.gap", "device.eff", "device.eff.std"):
        np.testing.assert_allclose(top[head].to_numpy(), pred[head].to_numpy(),
                                   rtol=1e-5, atol=1e-5, err_msg=head)
    assert (top["device.eff.std"] > 0).all()  # the members really differ
