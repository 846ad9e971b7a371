"""The flat Python API: ``nested_ae_jax.fit`` / ``load`` -> a TrainedChain; its predictions
against the ``nested-ae predict`` command, save -> load round trips, pure head functions
against central differences, and the fine-tuned stage against its own out-of-fold figures."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import nested_ae_jax as nae
from conftest import REPO, central_differences, run_examples_module, tiny_scale
from nested_ae_jax import io
from nested_ae_jax.cli import main
from nested_ae_jax.errors import NestedAEError, RunDirError

FINETUNE = 3


def chain_doc(up_csv: str, down_csv: str) -> dict:
    """Two scales, the paper's protocol (upstream fold 0 feeds every downstream fold), joint
    fine-tuning on."""
    up = tiny_scale("up", data=up_csv, latent=2, epochs=5)
    down = tiny_scale("down", data=down_csv, latent=3, epochs=5)
    down["inputs"] = {"up_latent": {"kind": "latent", "scale": "up",
                                    "rename": {"a": "A", "b": "B"}},
                      "x": {"kind": "numeric", "columns": ["d", "e"]}}
    down["heads"]["up_latent"] = {"kind": "reconstruction", "input": "up_latent"}
    return {"chain": {"split": "independent", "finetune_epochs": FINETUNE,
                      "finetune_learning_rate": 0.01},
            "scales": {"up": up, "down": down}}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(fresh chain, its saved run directory, the downstream rows, a config path)."""
    tmp = tmp_path_factory.mktemp("api")
    x = np.random.default_rng(0).normal(size=(2, 45, 5))
    up = pd.DataFrame(x[0, :36, :3], columns=list("abc")).assign(y=lambda f: f.a - f.b * f.c)
    down = pd.DataFrame(x[1], columns=["A", "B", "c", "d", "e"]).assign(
        y=lambda f: np.abs(f.A + f.d - f.e))
    for name, frame in (("up", up), ("down", down)):
        frame.to_csv(tmp / f"{name}.csv", index=False)
    path = tmp / "chain.toml"
    path.write_text(io.dumps_toml(chain_doc("up.csv", "down.csv")))  # relative to the config
    chain = nae.fit(path, overrides={"down.training.epochs": 6})
    run = chain.save(tmp / "run")
    return chain, run, down, path


def test_fit_gives_the_one_record(fitted):
    chain, run, _, _ = fitted
    assert chain.scales == ("up", "down")
    assert chain.config.scale("down").training.epochs == 6  # the override
    assert chain.stage == "finetuned" and chain.finetuned is not None
    assert set(chain.metrics) >= {"scales", "finetuned", "wall_seconds"}
    pooled = lambda m: m["finetuned"]["scales"]["down"]["heads"]["y"]["pooled_val"]  # noqa: E731
    assert pooled(nae.load(run).metrics) == pytest.approx(pooled(chain.metrics))
    with pytest.raises(RunDirError, match="already exists"):
        chain.save(run)


def test_load_predict_equals_the_predict_command(fitted, tmp_path, capsys):
    _, run, down, _ = fitted
    rows = down.iloc[::3]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    for stage in ("finetuned", "sequential"):
        out = tmp_path / f"{stage}.csv"
        flags = [] if stage == "finetuned" else ["--stage", "sequential"]
        assert main(["predict", str(run), "--data", str(tmp_path / "rows.csv"), "--out", str(out),
                     "--no-inputs", *flags]) == 0
        said = capsys.readouterr().err
        assert ("fine-tuned" if stage == "finetuned" else "sequentially trained") in said
        cli = pd.read_csv(out)
        api = nae.load(run, stage=None if stage == "finetuned" else stage).predict(rows)
        assert list(api.columns) == list(cli.columns)
        assert {"down.y", "down.y.std", "up.y"} <= set(api.columns)
        np.testing.assert_allclose(api.to_numpy(float), cli.to_numpy(float), rtol=1e-6)


def test_fit_save_load_gives_the_same_predictions(fitted, tmp_path):
    chain, run, down, _ = fitted
    loaded = nae.load(run)
    assert loaded.stage == chain.stage == "finetuned" and loaded.scales == chain.scales
    for fold in (None, 1):
        pd.testing.assert_frame_equal(loaded.predict(down, fold=fold),
                                      chain.predict(down, fold=fold), rtol=1e-6)
    # a loaded chain saves by copying its directory (overwrite: replaced atomically)
    again = loaded.save(tmp_path / "copy")
    loaded.save(again, overwrite=True)
    pd.testing.assert_frame_equal(nae.load(again).predict(down), loaded.predict(down))
    with pytest.raises(RunDirError, match="not found"):
        nae.load(tmp_path / "does-not-exist")


def test_the_finetuned_stage_reproduces_its_out_of_fold_figures(fitted):
    """metrics["finetuned"] scored copy k of the jointly trained chain on fold k's validation
    rows: predicting those rows with fold=k gives the same per-fold and pooled MAE (and the
    sequential stage gives metrics["scales"]'s: a different set of parameters)."""
    _, run, down, _ = fitted
    for stage, doc in (("finetuned", lambda m: m["finetuned"]["scales"]["down"]),
                       ("sequential", lambda m: m["scales"]["down"])):
        chain = nae.load(run, stage=stage)
        fold_of_row = chain.trained["down"].fold_of_row
        errors = np.zeros(len(down))
        for k in range(3):
            pred = chain.predict(down, fold=k)["down.y"].to_numpy()
            val = fold_of_row == k
            errors[val] = np.abs(pred - down["y"].to_numpy())[val]
            want = doc(chain.metrics)["folds"][k]["val"]["y"]["mae"]
            assert errors[val].mean() == pytest.approx(want, rel=1e-5)
        assert errors.mean() == pytest.approx(
            doc(chain.metrics)["heads"]["y"]["pooled_val"]["mae"], rel=1e-5)
    tuned, seq = (nae.load(run, stage=s).predict(down)["down.y"] for s in ("finetuned",
                                                                            "sequential"))
    assert np.abs(tuned - seq).max() > 1e-4


def test_head_fn_is_pure_and_its_gradient_matches_central_differences(fitted):
    chain, _, down, _ = fitted
    rows = down.iloc[:4]
    f = chain.head_fn("down.y")
    inputs = chain.inputs(rows)
    np.testing.assert_allclose(np.asarray(jax.jit(f)(inputs)),
                               chain.predict(rows)["down.y"].to_numpy(), rtol=1e-5, atol=1e-6)
    stacked = jax.tree.map(lambda a: jnp.stack([a, a[::-1]]), inputs)
    both = np.asarray(jax.jit(jax.vmap(f))(stacked))
    np.testing.assert_allclose(both[1], both[0][::-1], rtol=1e-6)
    with pytest.raises(NestedAEError, match="not a regression head"):
        chain.head_fn("down.nope")
    with jax.enable_x64(True):
        x64 = jax.tree.map(lambda a: np.asarray(a, np.float64), inputs)

        def total(x_up):
            return f({**x64, "up": {"x": x_up}}).sum()

        grad = np.asarray(jax.jit(jax.grad(total))(x64["up"]["x"]))
        assert np.abs(grad).max() > 1e-3  # d down.y / d raw upstream inputs, through the chain
        fd = central_differences(jax.jit(total), x64["up"]["x"])
        np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-7)

        # and with respect to the parameters: a directional derivative
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), chain.params)
        leaves, tree = jax.tree.flatten(params)
        rng = np.random.default_rng(1)
        v = jax.tree.unflatten(tree, [rng.normal(size=np.shape(a)) for a in leaves])

        @jax.jit
        def loss(p):
            return chain.apply(p, x64)["down"][0].heads["y"].sum()

        g = jax.jit(jax.grad(loss))(params)
        analytic = sum(float((a * b).sum()) for a, b in zip(jax.tree.leaves(g),
                                                              jax.tree.leaves(v)))
        h = 1e-6
        step = lambda s: jax.tree.map(lambda p, d: p + s * h * d, params, v)  # noqa: E731
        numeric = (float(loss(step(1))) - float(loss(step(-1)))) / (2 * h)
        assert analytic == pytest.approx(numeric, rel=1e-5)


def readme_example() -> str:
    """The Python block of README's "Using it from Python": the README block the docs'
    example checker leaves to this test (it trains the paper's chain as written)."""
    mod = run_examples_module()
    (block,) = [b for b in mod.blocks(REPO / "README.md") if b.skip is not None]
    return block.code


def test_the_readme_example_runs(monkeypatch, capsys):
    """The README's example as written (one import of the package, at most 12 lines), with
    few epochs through the documented ``overrides``."""
    code = readme_example()
    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert len(lines) <= 12 and sum("nested_ae_jax" in ln for ln in lines if "import" in ln) == 1
    fit = nae.fit
    fast = {f"{s}.training.{k}": v for s in ("atomic", "device")
            for k, v in (("epochs", 2), ("chunk_epochs", 2), ("batch_size", 256))}
    fast.update({f"{s}.cv.n_splits": 2 for s in ("atomic", "device")})
    monkeypatch.setattr(nae, "fit", lambda config, **kw: fit(config, overrides=fast, **kw),
                        raising=False)
    monkeypatch.chdir(REPO)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    grad, table = np.asarray(scope["grad"]), scope["table"]
    assert grad.shape == (len(scope["rows"]), 15) and np.isfinite(grad).all()
    assert np.abs(grad).max() > 0
    assert "device.pce" in table and np.isfinite(table["device.pce"]).all()
