"""Simulated campaigns: a planted best is found fast, no target leaks before it is chosen,
results depend only on the seed, random picking explores half the pool."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from nested_ae_jax import bo
from nested_ae_jax.errors import ConfigError, DataError

P = 64
# Compiling is most of these tests' time: every GP campaign here has the same shapes (4 trials,
# batches of 2, one buffer phase of P + 2 rows), so each method compiles once.
FAST_GP = dict(fit=bo.FitConfig(restarts=1, steps=60), refit_steps=20, refit_growth=1.5)
T, Q = 4, 2


@pytest.fixture(scope="module")
def planted():
    """A 2-D pool on a jittered grid with y = x0 + x1 and the best planted at the corner."""
    rng = np.random.default_rng(0)
    g = (np.arange(8) + 0.5) / 8
    x = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2) + rng.uniform(-0.03, 0.03, (P, 2))
    x[np.argmax(x.sum(1))] = [1.05, 1.05]
    y = x.sum(1)
    return x.astype(np.float32), y.astype(np.float32)


def campaign(method, y, x=None, **kw):
    kw.setdefault("trials", T)
    kw.setdefault("batch", Q)
    kw.setdefault("buffers", [P + kw["batch"]])
    kw.setdefault("init", 3)
    return bo.run_campaign(method, y, features=x, **kw)


def check_orders(result, init, q):
    """Reveal orders: distinct candidates, init + rounds * q of them when the best was found."""
    for t in range(result.order.shape[0]):
        order = result.order[t]
        seen = order[order >= 0]
        assert len(set(seen)) == len(seen)
        assert result.revealed[t] == len(seen) == init + result.rounds[t] * q
    return True


@pytest.mark.parametrize("acquisition", ["ei", "ts"])
def test_planted_best_is_found_far_faster_than_random(planted, acquisition):
    """Random picking would need about half the pool (see test_random_explores_half_the_pool);
    a GP on features that make the corner obvious needs a few rounds."""
    x, y = planted
    best = int(np.argmax(y))
    gp = campaign(bo.gp_method(acquisition, **FAST_GP), y, x, seed=0)
    assert gp.found.all() and check_orders(gp, 3, Q)
    for t in range(T):
        assert best in gp.order[t, gp.revealed[t] - Q:gp.revealed[t]]
    assert gp.share.max() < 0.3 and gp.share.mean() < 0.2


def test_ensemble_and_the_other_objectives(planted):
    _, y = planted
    # minimising -y, or aiming at y's maximum as a target value, finds the same candidate;
    # a sharp surrogate finds it in the first round
    ens = campaign(bo.ensemble_method("ei"), -y, surrogate=(-y, np.full(P, 0.1)),
                   objective=bo.Objective(kind="min"))
    assert ens.found.all() and check_orders(ens, 3, Q) and (ens.rounds <= 1).all()
    target = campaign(bo.ensemble_method("ucb"), y, surrogate=(y, np.full(P, 0.1)),
                      objective=bo.parse_objective(f"target={y.max()}"))
    assert target.found.all() and (target.rounds <= 1).all()
    near_one = bo.Objective(kind="target", value=1.0)
    assert np.array_equal(np.asarray(bo.utility(near_one, np.array([0.5, 2.0]))),
                          [-0.5, -1.0])


def smoother(revealed, y_seen):
    """A per-round surrogate that learns from the revealed targets only (kernel smoother on the
    candidate index): its predictions change as targets are revealed."""
    idx = jnp.arange(P, dtype=jnp.float32)
    w = jnp.exp(-0.5 * ((idx[:, None] - idx[None, :]) / 4.0) ** 2) * revealed
    mean = (w @ y_seen) / (w.sum(1) + 1e-3)
    return mean, 1.0 / jnp.sqrt(1.0 + w.sum(1))


@pytest.mark.parametrize("name", ["gp-ei", "gp-ts", "ensemble", "random"])
def test_no_target_is_seen_before_it_is_chosen(planted, name):
    """Replace every target trial t never revealed by garbage (kept below the best, so the best
    stays the same): trial t makes exactly the same picks (the other trials, which revealed
    other targets, may not)."""
    x, y = planted
    method = {"gp-ei": bo.gp_method("ei", **FAST_GP), "gp-ts": bo.gp_method("ts", **FAST_GP),
              "ensemble": bo.ensemble_method("ucb"), "random": bo.random_method()}[name]
    kw = dict(surrogate=smoother if name == "ensemble" else None, seed=5)
    rng = np.random.default_rng(1)
    first = campaign(method, y, x, **kw)
    for t in range(2):
        seen = first.order[t][first.order[t] >= 0]
        garbage = y.copy()
        hidden = np.setdiff1d(np.arange(P), seen)
        assert hidden.size > 0
        garbage[hidden] = rng.uniform(-50, y.max() - 1e-3, hidden.size)
        again = campaign(method, garbage, x, **kw)
        np.testing.assert_array_equal(again.order[t], first.order[t])
        assert again.rounds[t] == first.rounds[t]


def test_results_depend_only_on_the_seed(planted):
    x, y = planted
    method = bo.gp_method("ei", **FAST_GP)
    a = campaign(method, y, x, seed=0)
    b = campaign(method, y, x, seed=0)
    c = campaign(method, y, x, seed=1)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.share, b.share)
    assert not np.array_equal(a.order, c.order)


def test_random_explores_half_the_pool():
    """With one initial pick, the best's position in a random order is uniform on 1..P:
    E[share] = (P + 1) / (2P), sd sqrt((P^2 - 1) / 12) / P; 4 standard errors of 500 trials."""
    y = np.arange(P, dtype=np.float32)
    r = campaign(bo.random_method(), y, trials=500, batch=1, init=1, seed=3)
    assert r.found.all()
    se = np.sqrt((P**2 - 1) / 12) / P / np.sqrt(500)
    assert abs(r.share.mean() - (P + 1) / (2 * P)) < 4 * se
    # and roughly uniform: each quarter of the pool holds about a quarter of the finds
    counts = np.bincount(np.minimum((r.share * 4).astype(int), 3), minlength=4)
    assert counts.min() > 500 / 4 * 0.7


def test_buffer_phases_and_dropping_finished_trials_change_nothing():
    """Random picks depend only on the seed, the trial and the count revealed: several buffer
    phases (running trials regathered, finished ones dropped, at each) give the same campaign
    as one phase."""
    y = np.arange(P, dtype=np.float32)
    one = campaign(bo.random_method(), y, trials=6, seed=2)
    many = campaign(bo.random_method(), y, trials=6, seed=2, buffers=[8, 16, 32, P + Q])
    np.testing.assert_array_equal(one.order, many.order)
    np.testing.assert_array_equal(one.rounds, many.rounds)


def test_the_fit_sees_a_random_subset_of_revealed_rows_only():
    import jax

    from nested_ae_jax.bo import campaign as engine

    x = jnp.arange(P, dtype=jnp.float32)[:, None] * jnp.ones((1, 3))
    pool = engine._Pool(x[:, 0], x[:, 0] * 10, jnp.zeros(P, bool), x, x[:, 0], x[:, 0])
    order = jnp.full(P + 1, -1, jnp.int32).at[:20].set(jnp.arange(40, 60, dtype=jnp.int32))
    state = engine.TrialState(jax.random.PRNGKey(0), jnp.zeros(P, bool), order, jnp.int32(20),
                              jnp.bool_(True), 0, 0, None, None)
    fit_buffer = jax.jit(engine._fit_buffer, static_argnums=2)
    xb, yb, mask = fit_buffer(state, pool, 32, jax.random.PRNGKey(1))  # all 20, 12 masked
    assert int(mask.sum()) == 20 and sorted(np.asarray(xb[mask, 0])) == list(range(40, 60))
    np.testing.assert_array_equal(yb[~mask], 0)
    xb, yb, mask = fit_buffer(state, pool, 8, jax.random.PRNGKey(1))  # 8 of the 20
    assert bool(mask.all()) and len(set(np.asarray(xb[:, 0]))) == 8
    assert set(np.asarray(xb[:, 0])) <= set(range(40, 60))
    np.testing.assert_array_equal(yb, 10 * xb[:, 0])


def test_merge_pool_averages_identical_inputs():
    frame = pd.DataFrame({"a": [1, 1, 2, 1], "b": ["x", "x", "y", "z"], "t": [1.0, 3.0, 5.0, 7.0],
                          "other": [0, 0, 0, 0]})
    pool = bo.merge_pool(frame, ["a", "b"], "t")
    assert list(pool.columns) == ["a", "b", "t", "rows"]
    assert pool.to_dict("list") == {"a": [1, 2, 1], "b": ["x", "y", "z"], "t": [2.0, 5.0, 7.0],
                                    "rows": [2, 1, 1]}
    with pytest.raises(DataError, match="did you mean 'b'"):
        bo.merge_pool(frame, ["a", "bb"], "t")
    with pytest.raises(DataError, match="missing"):
        bo.merge_pool(frame.assign(t=[1.0, np.nan, 2.0, 3.0]), ["a"], "t")


def test_bad_arguments_are_one_line_errors(planted):
    x, y = planted
    with pytest.raises(DataError, match="missing or infinite"):
        bo.run_campaign(bo.random_method(), np.where(y > 1, np.nan, y))
    with pytest.raises(ConfigError, match="init"):
        bo.run_campaign(bo.random_method(), y, init=P)
    with pytest.raises(ConfigError, match="needs features"):
        bo.run_campaign(bo.gp_method(), y)
    with pytest.raises(ConfigError, match="acquisition 'ts'"):
        bo.run_campaign(bo.ensemble_method("ts"), y, surrogate=(y, y))
    with pytest.raises(ConfigError, match="objective"):
        bo.parse_objective("maximum")
    with pytest.raises(DataError, match="features"):
        bo.run_campaign(bo.gp_method(), y, features=x[:10])
    with pytest.raises(ConfigError, match="GiB"):
        bo.run_campaign(bo.gp_method("ts"), np.arange(3000.0), features=np.ones((3000, 2)))


def test_report_files(tmp_path, planted):
    from nested_ae_jax.bo import report

    _, y = planted
    results = {"random": campaign(bo.random_method(), y, seed=0),
               "ensemble": campaign(bo.ensemble_method("ucb"), y, surrogate=(y, np.full(P, 1.0)))}
    paths = report.write_report(tmp_path / "out", results, {"pool": f"{P} candidates"})
    frame = pd.read_csv(paths["csv"])
    assert list(frame.columns) == ["trial", "method", "found", "share", "revealed", "rounds",
                                   "pool"]
    assert len(frame) == 2 * T and set(frame["method"]) == {"random", "ensemble"}
    np.testing.assert_allclose(frame["share"], frame["revealed"] / P)
    text = paths["summary"].read_text()
    assert "- pool: 64 candidates" in text and "| random | 4 | 4 |" in text
    table = report.summary_table(frame)
    share = 100 * results["random"].share
    np.testing.assert_allclose(table.loc[0, ["mean %", "median %"]].to_numpy(float),
                               [share.mean(), np.median(share)])
    assert paths["box_plot"].stat().st_size > 1000
