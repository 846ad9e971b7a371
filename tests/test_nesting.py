"""The nesting combinator: scales composed into one differentiable chain."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from conftest import central_differences, tiny_scale
from nested_ae_jax.config import parse_config
from nested_ae_jax.model import ScaleDims, scale_model
from nested_ae_jax.nesting import column_maps, nest
from nested_ae_jax.predict import predict_frame
from nested_ae_jax.chain import load as load_chain
from nested_ae_jax.store import prepare_out_dir, write_run
from nested_ae_jax.runner import fit_config


def two_scale_doc(up_csv="up.csv", down_csv="down.csv", epochs=5):
    up = tiny_scale("up", data=up_csv, latent=2, epochs=epochs)
    down = tiny_scale("down", data=down_csv, latent=3, epochs=epochs)
    down["inputs"] = {"up_latent": {"kind": "latent", "scale": "up",
                                    "rename": {"a": "A", "b": "B"}},
                      "x": {"kind": "numeric", "columns": ["d", "e"]}}
    down["heads"]["up_latent"] = {"kind": "reconstruction", "input": "up_latent"}
    down["heads"]["y"]["output_activation"] = "relu"
    down["heads"]["y"]["init_gain"] = 3.0
    # the paper's protocol: each scale its own KFold, upstream fold 0 feeds every fold
    return {"chain": {"split": "independent"}, "scales": {"up": up, "down": down}}


def test_device_gradient_wrt_atomic_raw_descriptor_matches_finite_differences():
    with jax.enable_x64(True):
        cfg = parse_config(two_scale_doc())
        up, down = cfg.scales
        models = {"up": scale_model(up, ScaleDims((("x", 3),), (("y", 1), ("x", 3)))),
                  "down": scale_model(down, ScaleDims((("up_latent", 2), ("x", 2)),
                                                      (("y", 1), ("x", 3), ("up_latent", 2))))}
        chain = nest(models)
        cp = chain.init(jax.random.key(0))
        rng = np.random.default_rng(1)
        # non-trivial scalers between the scales, as a trained chain has
        cp["up"].stats["x"] = {"mean": jnp.array([0.5, -1.0, 2.0]),
                                  "scale": jnp.array([2.0, 0.5, 1.5])}
        cp["down"].stats["up_latent"] = {"mean": jnp.array([0.1, -0.2]),
                                            "scale": jnp.array([0.3, 0.7])}
        x_up = jnp.asarray(rng.normal(size=(4, 3)))
        x_down = jnp.asarray(rng.normal(size=(4, 2)))

        def pce(x):
            out = chain.apply(cp, {"up": {"x": x}, "down": {"x": x_down}})
            return out["down"].heads["y"].sum()

        grad = np.asarray(jax.grad(pce)(x_up))
        assert np.abs(grad).max() > 1e-3  # the signal really passes through the chain
        fd = central_differences(pce, x_up)
        np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-9)


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chain")
    rng = np.random.default_rng(0)
    n_up, n_down = 36, 45
    up = pd.DataFrame(rng.normal(size=(n_up, 3)), columns=["a", "b", "c"])
    up["y"] = up.a - up.b * up.c
    down = pd.DataFrame(rng.normal(size=(n_down, 5)), columns=["A", "B", "c", "d", "e"])
    down["y"] = np.abs(down.A + down.d - down.e)
    up.to_csv(tmp / "up.csv", index=False)
    down.to_csv(tmp / "down.csv", index=False)
    cfg = parse_config(two_scale_doc(str(tmp / "up.csv"), str(tmp / "down.csv")),
                       str(tmp / "c.toml"))
    fit = fit_config(cfg)
    out = prepare_out_dir(tmp / "run")
    write_run(fit, out)
    return cfg, fit, out, down


def test_column_maps_compose_renames():
    cfg = parse_config(two_scale_doc())
    maps = column_maps({s.name: s for s in cfg.scales}, "down")
    assert maps["up"] == {"a": "A", "b": "B", "c": "c"}


def test_upstream_scale_is_frozen_while_the_next_trains(chain_run, tmp_path):
    cfg, fit, out, down = chain_run
    # re-train only the upstream scale: its parameters must equal those in the chain fit,
    # bit for bit, i.e. training the downstream scale did not touch them
    from nested_ae_jax.config import Config
    alone = fit_config(Config(scales=cfg.scales[:1], chain=cfg.chain, source=cfg.source))
    for a, b in zip(jax.tree.leaves(alone.results["up"].state.params),
                    jax.tree.leaves(fit.results["up"].state.params)):
        np.testing.assert_array_equal(a, b)
    run = load_chain(out)
    for a, b in zip(jax.tree.leaves(run.trained["up"].params),
                    jax.tree.leaves(fit.results["up"].params)):
        np.testing.assert_array_equal(a, b)


def test_the_downstream_latent_input_is_the_upstream_fold0_latent(chain_run):
    cfg, fit, out, down = chain_run
    up = fit.results["up"]
    x = down.rename(columns={"A": "a", "B": "b"})[["a", "b", "c"]].to_numpy(np.float32)
    params0 = jax.tree.map(lambda a: a[0], up.params)
    stats0 = jax.tree.map(lambda a: a[0], up.batch.stats)
    latent = up.model.apply(params0, stats0, {"x": jnp.asarray(x)}).latent
    np.testing.assert_allclose(fit.results["down"].data.inputs["up_latent"], latent, rtol=1e-5,
                               atol=1e-6)


def test_saved_chain_predicts_the_same_numbers_from_the_last_scale_columns_only(chain_run):
    cfg, fit, out, down = chain_run
    run = load_chain(out)
    raw = down[["A", "B", "c", "d", "e"]]  # no target, nothing but the device file's inputs
    table = predict_frame(run, raw, fold=2)
    np.testing.assert_allclose(table["down.y"],
                               np.asarray(fit.results["down"].outputs.heads["y"][2, :, 0]),
                               rtol=1e-5, atol=1e-5)
    assert "up.y" in table  # the upstream property on the downstream rows


def test_joint_finetuning_moves_the_upstream_encoder_through_the_downstream_loss(chain_run):
    cfg, fit, out, down = chain_run
    from nested_ae_jax.config import override
    from nested_ae_jax.finetune import finetune_chain
    # only the downstream loss counts: any change upstream came through the chain
    tuned_cfg = override(cfg, {"chain.finetune_epochs": 5, "chain.finetune_learning_rate": 1e-2,
                               "chain.finetune_weights": {"up": 0.0, "down": 1.0}})
    tuned = finetune_chain(tuned_cfg, fit.results)
    kernel = lambda p: p["encoder"]["params"]["Dense_0"]["kernel"]  # noqa: E731
    before = np.asarray(kernel(fit.results["up"].params)[0])  # the feeding fold 0
    after = np.asarray(kernel(tuned.params["up"].params))  # one per copy
    assert after.shape[0] == 3  # one chain copy per downstream fold
    assert np.abs(after - before).max() > 1e-4
    assert np.abs(after[0] - after[1]).max() > 0  # copies train on different folds
    hist = tuned.history
    assert hist.train["down.total"].shape == (3, 5) and np.isfinite(hist.val["down.total"]).all()
    assert {"up.total", "down.total", "down.y"} <= set(hist.train)  # terms of every scale
    assert all(t.split(".")[0] in ("up", "down") for t in hist.train)
    assert "pooled_val" in tuned.metrics["down"]["heads"]["y"]


def test_finetuning_standardises_upstream_inputs_as_the_trainer_did(chain_run):
    """With chain.transfer_scaler = refit the trainer fed the downstream scale latents computed
    with upstream scalers re-fitted on the downstream rows; fine-tuning (here with a learning
    rate too small to move anything) must score the very same downstream models."""
    cfg, _, _, _ = chain_run
    from nested_ae_jax.config import override
    from nested_ae_jax.finetune import finetune_chain
    refit = override(cfg, {"chain.transfer_scaler": "refit"})
    fit = fit_config(refit)
    tuned = finetune_chain(override(refit, {"chain.finetune_epochs": 1,
                                            "chain.finetune_learning_rate": 1e-12}), fit.results)
    for k in range(3):
        want = fit.results["down"].metrics["folds"][k]["val"]["y"]["mae"]
        got = tuned.metrics["down"]["folds"][k]["val"]["y"]["mae"]
        assert got == pytest.approx(want, rel=1e-4)
