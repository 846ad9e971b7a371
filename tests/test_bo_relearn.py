"""The latent map retrained on the revealed rows (``bo.relearn``): no unrevealed target
reaches a refit, the refit learns (the target head's weights and the latents move), and a
campaign with refits makes the same picks whatever the targets it never revealed."""

from __future__ import annotations

import numpy as np
import pytest

from nested_ae_jax import bo
from nested_ae_jax.bo import chain as bochain
from nested_ae_jax.bo.relearn import relearner
from nested_ae_jax.config import load_config
from test_bo_chain import files  # noqa: F401  (the two-scale chain and its files)


@pytest.fixture(scope="module")
def setup(files):  # noqa: F811
    cfg = load_config(files / "chain.toml")
    specs = {s.name: s for s in cfg.scales}
    target = bochain.parse_head_objective("max:down.z", specs)
    frame = bochain.scale_frames(cfg, ["down"])["down"]
    pool = bochain.candidate_pool(frame, specs, target)
    latent_map = bochain.honest_map(cfg, target, pool, epochs=5)
    return cfg, target, pool, latent_map


def test_no_unrevealed_target_reaches_a_refit(setup):
    """Two trials; every target a trial has not revealed is NaN, 1e30 or real: the features
    are the same, finite, and differ from the blind latents (the refit learned)."""
    cfg, target, pool, latent_map = setup
    y = pool[target.column].to_numpy(np.float32)
    rng = np.random.default_rng(0)
    revealed = np.zeros((2, len(pool)), bool)
    revealed[0, rng.choice(len(pool), 12, replace=False)] = True
    revealed[1, rng.choice(len(pool), 8, replace=False)] = True
    out = []
    for fill in (np.nan, 1e30, None):
        seen = np.where(revealed, y[None], np.nan if fill is None else fill)
        if fill is None:
            seen = np.broadcast_to(y, revealed.shape).copy()
        fn = relearner(cfg, target, latent_map, pool, every=2, epochs=4).fn
        out.append(fn(revealed, seen, np.array([0, 1])))
    assert np.isfinite(out[0]).all() and out[0].shape == (2, len(pool), 4)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])
    blind = latent_map.features
    np.testing.assert_array_equal(out[0][:, :, :2], np.broadcast_to(blind[:, :2], (2, len(pool), 2)))
    assert np.abs(out[0][:, :, 2:] - blind[None, :, 2:]).max() > 1e-4  # the down scale moved
    assert np.abs(out[0][0, :, 2:] - out[0][1, :, 2:]).max() > 1e-4  # per trial
    # hybrid: fixed features (the raw descriptors) come first and stay as given
    raw = np.arange(len(pool) * 3, dtype=np.float32).reshape(len(pool), 3)
    fn = relearner(cfg, target, latent_map, pool, every=2, epochs=4, fixed=raw).fn
    both = fn(revealed, np.where(revealed, y[None], 0.0), np.array([0, 1]))
    np.testing.assert_array_equal(both[:, :, :3], np.broadcast_to(raw, (2, len(pool), 3)))
    np.testing.assert_array_equal(both[:, :, 3:], out[0])


def test_campaign_with_refits_sees_no_unrevealed_target(setup):
    cfg, target, pool, latent_map = setup
    y = pool[target.column].to_numpy(np.float32)
    method = bo.gp_method("ei", fit=bo.FitConfig(restarts=1, steps=40), refit_steps=10)

    calls = []

    def run(targets):
        inner = relearner(cfg, target, latent_map, pool, every=2, epochs=3)

        def fn(revealed, y_seen, trials):
            calls.append(int(revealed.sum()))
            assert not np.any(y_seen[~revealed])  # the engine passes 0 where not revealed
            return inner.fn(revealed, y_seen, trials)

        return bo.run_campaign(method, targets, features=latent_map.features, trials=2,
                               init=3, seed=1, buffers=[len(pool) + 1],
                               relearn=bo.Relearn(fn, inner.every))

    first = run(y)
    assert first.found.all() and calls  # refits happened
    rng = np.random.default_rng(1)
    for t in range(2):
        seen = first.order[t][first.order[t] >= 0]
        garbage = y.copy()
        hidden = np.setdiff1d(np.arange(len(pool)), seen)
        garbage[hidden] = rng.uniform(-50, y.max() - 1e-3, hidden.size)
        np.testing.assert_array_equal(run(garbage).order[t], first.order[t])
