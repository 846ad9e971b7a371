"""User Flax modules as a scale's encoder and heads (issue 12): through the CLI (train, the
run directory's module copy, predict after the original moved, --resume, sweep, design), an
nnx module, the chain gradient through a user module, penalties by path, config errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from conftest import REPO, central_differences
from nested_ae_jax.cli import main
from nested_ae_jax.config import load_config, parse_config
from nested_ae_jax.errors import ConfigError
from nested_ae_jax.io import dumps_toml
from nested_ae_jax.losses import kernels
from nested_ae_jax.model import ScaleDims, scale_model
from nested_ae_jax.nesting import nest
from nested_ae_jax.training import hyperparameters, penalty

MODULES = '''
import flax.linen as nn
import jax.numpy as jnp


class PerSite(nn.Module):
    """One Dense per site (equal column blocks), summed, then the latent."""
    out_features: int
    sites: int = 3
    width: int = 4
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train):
        parts = jnp.split(x, self.sites, axis=-1)
        h = sum(nn.Dense(self.width, name=f"site_{i}")(p) for i, p in enumerate(parts))
        h = nn.Dropout(self.dropout, deterministic=not train)(jnp.tanh(h))
        return jnp.tanh(nn.Dense(self.out_features, name="latent")(h))


def make_encoder(out_features, **options):
    return PerSite(out_features=out_features, **options)


class Head(nn.Module):
    out_features: int
    width: int = 8

    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(self.out_features)(nn.gelu(nn.Dense(self.width)(x)))


def make_head(out_features, width=8):
    return Head(out_features=out_features, width=width)


def wrong_width(out_features):
    return Head(out_features=out_features + 1)


def not_a_module(out_features):
    return lambda x: x


def raises(out_features):
    raise ValueError("no such layout")


class Normed(nn.Module):
    out_features: int

    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(self.out_features)(nn.BatchNorm(use_running_average=not train)(x))


def batchnorm(out_features):
    return Normed(out_features=out_features)
'''
DESCRIPTORS = ["A_ion_rad", "A_En", "B_ion_rad", "B_En", "X_ion_rad", "X_En"]  # 2 per site


def chain_doc(data: str, epochs: int = 4) -> dict:
    """atomic (user encoder + user gap head + built-in reconstruction) -> device (built-in)."""
    training = {"epochs": epochs, "batch_size": 32, "chunk_epochs": 2, "checkpoint_every": 2}
    return {"scales": {
        "atomic": {"data": data,
                   "inputs": {"descriptors": {"kind": "numeric", "columns": DESCRIPTORS}},
                   "encoder": {"latent_size": 3, "l1": 0.001,
                               "module": "my_modules.py:make_encoder",
                               "options": {"sites": 3, "width": 4, "dropout": 0.1}},
                   "heads": {"gap": {"kind": "regression", "target": "Gap", "l2": 0.001,
                                     "module": "my_modules.py:make_head",
                                     "options": {"width": 8}},
                             "descriptors": {"kind": "reconstruction", "input": "descriptors"}},
                   "training": training, "cv": {"n_splits": 2}},
        "device": {"data": data,
                   "inputs": {"z": {"kind": "latent", "scale": "atomic"}},
                   "encoder": {"latent_size": 2},
                   "heads": {"slme": {"kind": "regression", "target": "SLME", "hidden": [4],
                                      "dropout": 0.1}},
                   "training": training, "cv": {"n_splits": 2}}}}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A config folder (config, module file, 120 rows of the band-gap data) and a run
    trained from it through the CLI."""
    tmp = tmp_path_factory.mktemp("modules")
    conf = tmp / "conf"
    conf.mkdir()
    (conf / "my_modules.py").write_text(MODULES)
    from nested_ae_jax.datasets import load_bandgaps
    load_bandgaps().sample(120, random_state=0).to_csv(conf / "bg.csv", index=False)
    (conf / "cfg.toml").write_text(dumps_toml(chain_doc("bg.csv")))
    run = tmp / "run"
    assert main(["train", str(conf / "cfg.toml"), "--out", str(run), "--quiet"]) == 0
    return tmp, conf / "cfg.toml", run


def test_the_run_directory_keeps_a_copy_of_the_module_file(project):
    tmp, cfg, run = project
    copies = list((run / "modules").iterdir())
    assert len(copies) == 1 and copies[0].read_text() == MODULES
    assert copies[0].name.startswith("my_modules-")
    text = (run / "config.toml").read_text()
    assert f'module = "modules/{copies[0].name}:make_encoder"' in text
    assert f'module = "modules/{copies[0].name}:make_head"' in text
    assert "hidden" not in text.split("[scales.atomic.encoder]")[1].split("[")[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["scales"]["device"]["heads"]["slme"]["pooled_val"]["mae"])


def test_predict_works_after_the_original_module_file_and_the_run_moved(project, tmp_path):
    tmp, cfg, run = project
    moved = tmp_path / "elsewhere"
    shutil.copytree(run, moved)
    original = cfg.parent / "my_modules.py"
    hidden = original.rename(cfg.parent / "hidden.txt")
    try:
        assert main(["predict", str(moved), "--data", str(cfg.parent / "bg.csv"),
                     "--out", str(tmp_path / "a.csv")]) == 0
    finally:
        hidden.rename(original)
    assert main(["predict", str(run), "--data", str(cfg.parent / "bg.csv"),
                 "--out", str(tmp_path / "b.csv")]) == 0
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert np.isfinite(a["device.slme"]).all()
    pd.testing.assert_frame_equal(a, b)


def test_resume_continues_a_run_with_module_copies_to_the_same_numbers(project, tmp_path):
    tmp, cfg, run = project
    partial = tmp_path / "partial"
    shutil.copytree(run, partial)
    # as if killed after device's epoch-2 checkpoint: the final steps are written at the end
    for scale in ("atomic", "device"):
        shutil.rmtree(partial / "checkpoints" / scale / "4")
    (partial / "metrics.json").unlink()
    assert main(["train", str(cfg), "--out", str(partial), "--resume", "--quiet"]) == 0
    done, ref = (json.loads((p / "metrics.json").read_text())["scales"]["device"]["heads"]
                 for p in (partial, run))
    assert done["slme"]["pooled_val"] == ref["slme"]["pooled_val"]
    # a changed module file is another module: --resume refuses it
    original = cfg.parent / "my_modules.py"
    text = original.read_text()
    try:
        original.write_text(text + "\n# changed\n")
        assert main(["train", str(cfg), "--out", str(partial), "--resume", "--quiet"]) == 2
    finally:
        original.write_text(text)


def test_sweep_numbers_share_one_compiled_group_and_module_options_split(project, tmp_path,
                                                                         capsys):
    tmp, cfg, run = project
    assert main(["sweep", str(cfg), "--scale", "atomic", "--grid", "encoder.l1=0,0.01",
                 "--grid", "heads.gap.weight=1,2", "--out", str(tmp_path / "a"),
                 "--quiet"]) == 0
    assert "4 combinations x folds = 8 models in 1 compiled group(s)" in capsys.readouterr().out
    assert main(["sweep", str(cfg), "--scale", "atomic", "--grid", "encoder.l1=0,0.01",
                 "--grid", "encoder.options.width=4,6", "--out", str(tmp_path / "b"),
                 "--quiet"]) == 0
    assert "4 combinations x folds = 8 models in 2 compiled group(s)" in capsys.readouterr().out


def test_design_through_a_chain_with_user_modules(project, tmp_path):
    tmp, cfg, run = project
    out = tmp_path / "cands.csv"
    assert main(["design", str(run), "--maximize", "device.slme", "--starts", "8",
                 "--steps", "5", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) and np.isfinite(table["device.slme"]).all()


def test_an_nnx_module_trains_and_its_run_loads_back(tmp_path):
    from nested_ae_jax.runner import fit_config
    from nested_ae_jax.chain import load as load_chain
    from nested_ae_jax.store import prepare_out_dir, write_run

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    frame["y"] = frame.a - frame.b * frame.c
    frame.to_csv(tmp_path / "s.csv", index=False)
    example = REPO / "experiments" / "custom_module" / "residual_nnx.py"
    cfg = parse_config({"scales": {"s": {
        "data": str(tmp_path / "s.csv"),
        "inputs": {"x": {"kind": "numeric", "columns": ["a", "b", "c"]}},
        "encoder": {"latent_size": 2, "module": f"{example}:make_head",
                    "options": {"width": 8, "blocks": 1}},
        "heads": {"y": {"kind": "regression", "target": "y", "l1": 0.01,
                        "module": f"{example}:make_head",
                        "options": {"width": 8, "blocks": 2, "dropout": 0.2}}},
        "training": {"epochs": 30, "batch_size": 8, "chunk_epochs": 30, "checkpoint_every": 0},
        "cv": {"n_splits": 2}}}}, str(tmp_path / "cfg.toml"))
    fit = fit_config(cfg)
    params = fit.results["s"].params
    assert set(params["heads"]["y"]["params"]["blocks"]) == {0, 1}  # nnx.List: integer keys
    hist = fit.results["s"].history.train["y"]
    assert hist[:, -1].mean() < hist[:, 0].mean()  # it learns (epoch 30 vs epoch 10)
    out = prepare_out_dir(tmp_path / "run")
    write_run(fit, out)
    loaded = load_chain(out)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded.trained["s"].params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    pred = loaded.predictions(frame, scale="s", source="rows")
    assert np.isfinite(np.asarray(pred["s"][0].heads["y"])).all()


def test_chain_gradient_through_a_user_encoder_matches_finite_differences(tmp_path):
    """d(sum of the downstream head) / d(raw upstream inputs), float64, upstream encoder a user
    linen module (per-site blocks, tanh), non-trivial scalers."""
    (tmp_path / "my_modules.py").write_text(MODULES)
    with jax.enable_x64(True):
        cfg = parse_config({"scales": {
            "up": {"data": "up.csv",
                   "inputs": {"x": {"kind": "numeric", "columns": ["a", "b", "c"]}},
                   "encoder": {"latent_size": 2, "module": "my_modules.py:make_encoder",
                               "options": {"sites": 3, "width": 5}},
                   "heads": {"y": {"kind": "regression", "target": "y",
                                   "module": "my_modules.py:make_head"}}},
            "down": {"data": "down.csv",
                     "inputs": {"z": {"kind": "latent", "scale": "up"},
                                "x": {"kind": "numeric", "columns": ["d"]}},
                     "encoder": {"latent_size": 2, "hidden": [4]},
                     "heads": {"y": {"kind": "regression", "target": "y", "hidden": [3]}}}}},
            str(tmp_path / "cfg.toml"))
        up, down = cfg.scales
        chain = nest({"up": scale_model(up, ScaleDims((("x", 3),), (("y", 1),))),
                      "down": scale_model(down, ScaleDims((("z", 2), ("x", 1)), (("y", 1),)))})
        cp = chain.init(jax.random.key(0))
        cp["up"].stats["x"] = {"mean": jnp.array([0.5, -1.0, 2.0]),
                               "scale": jnp.array([2.0, 0.5, 1.5])}
        cp["down"].stats["z"] = {"mean": jnp.array([0.1, -0.2]), "scale": jnp.array([0.3, 0.7])}
        rng = np.random.default_rng(1)
        x_up, x_down = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(4, 1)))

        @jax.jit
        def f(x):
            return chain.apply(cp, {"up": {"x": x}, "down": {"x": x_down}})["down"].heads["y"].sum()

        grad = np.asarray(jax.grad(f)(x_up))
        assert np.abs(grad).max() > 1e-3
        fd = central_differences(f, x_up)
        np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-9)


def test_penalties_select_a_user_modules_kernels_by_path(tmp_path):
    (tmp_path / "my_modules.py").write_text(MODULES)
    cfg = parse_config({"scales": {"s": {
        "data": "s.csv", "inputs": {"x": {"kind": "numeric", "columns": ["a", "b", "c"]}},
        "encoder": {"latent_size": 2, "l1": 0.5, "l2": 0.25,
                    "module": "my_modules.py:make_encoder"},
        "heads": {"y": {"kind": "regression", "target": "y", "l2": 2.0,
                        "module": "my_modules.py:make_head"}}}}}, str(tmp_path / "c.toml"))
    spec = cfg.scales[0]
    model = scale_model(spec, ScaleDims((("x", 3),), (("y", 1),)))
    params = jax.jit(model.init)(jax.random.key(0))
    enc = params["encoder"]["params"]
    assert set(enc) == {"site_0", "site_1", "site_2", "latent"}
    enc_k = [np.asarray(enc[n]["kernel"]) for n in ("site_0", "site_1", "site_2", "latent")]
    head_k = [np.asarray(v["kernel"]) for v in params["heads"]["y"]["params"].values()]
    assert len(kernels(params["encoder"])) == 4 and len(kernels(params["heads"]["y"])) == 2
    want = sum(0.5 * np.abs(k).sum() + 0.25 * (k**2).sum() for k in enc_k) \
        + sum(2.0 * (k**2).sum() for k in head_k)  # biases never
    got = penalty(spec, params, hyperparameters(spec))
    assert float(got) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("encoder, message", [
    ({"module": "missing.py:make_encoder"}, r"encoder.module = 'missing.py:make_encoder': "
                                            r"file not found: .*missing.py"),
    ({"module": "my_modules.py"}, r"expected 'file.py:factory'"),
    ({"module": "my_modules.py:nope"}, r"scales.s.encoder.module = .*has no function or "
                                       r"class 'nope'"),
    ({"module": "my_modules.py:raises"}, r"the factory failed: ValueError: no such layout"),
    ({"module": "my_modules.py:wrong_width"}, r"maps \(2, 3\) to \(2, 3\), expected \(2, 2\)"),
    ({"module": "my_modules.py:not_a_module"}, r"must return a flax.linen.Module .* got "
                                               r"function"),
    ({"module": "my_modules.py:batchnorm"}, r"only the 'params' collection is trained; the "
                                            r"module also has \['batch_stats'\]"),
    ({"module": "no_such_package_xyz.mod:f"}, r"cannot import no_such_package_xyz.mod: "
                                              r"ModuleNotFoundError"),
    ({"module": "broken.py:f"}, r"importing .*broken.py failed: NameError"),
    ({"module": "my_modules.py:make_encoder", "hidden": [4]},
     r"encoder: 'hidden' configures the built-in network"),
    ({"module": "my_modules.py:make_encoder", "dropout": 0.1},
     r"encoder: 'dropout' configures the built-in network"),
    ({"options": {"width": 3}}, r"encoder.options: only used with 'module'"),
    ({"module": "my_modules.py:make_encoder", "options": {"width": {"a": 1}}},
     r"options.width must be a number, string, boolean or list"),
])
def test_bad_module_references_are_one_line_config_errors(tmp_path, encoder, message):
    (tmp_path / "my_modules.py").write_text(MODULES)
    (tmp_path / "broken.py").write_text("x = undefined_name\n")
    table = {"data": "s.csv", "inputs": {"x": {"kind": "numeric", "columns": ["a", "b", "c"]}},
             "encoder": {"latent_size": 2, **encoder},
             "heads": {"y": {"kind": "regression", "target": "y"}}}
    path = tmp_path / "c.toml"
    path.write_text(dumps_toml({"scales": {"s": table}}))
    with pytest.raises(ConfigError, match=message) as info:
        spec = load_config(path).scales[0]
        scale_model(spec, ScaleDims((("x", 3),), (("y", 1),)))
    assert "\n" not in str(info.value)


def test_a_head_module_with_output_activation_is_refused(tmp_path):
    (tmp_path / "my_modules.py").write_text(MODULES)
    with pytest.raises(ConfigError, match="heads.y: 'output_activation' configures the "
                                          "built-in network"):
        parse_config({"scales": {"s": {
            "data": "s.csv", "inputs": {"x": {"kind": "numeric", "columns": ["a"]}},
            "heads": {"y": {"kind": "regression", "target": "y", "output_activation": "relu",
                            "module": "my_modules.py:make_head"}}}}},
            str(tmp_path / "c.toml"))


def test_the_per_site_example_builds_with_a_latent_of_12():
    cfg = load_config(REPO / "experiments" / "custom_module" / "per_site_bandgap.toml")
    spec = cfg.scales[0]
    model = scale_model(spec, ScaleDims((("descriptors", 15),), (("gap", 1),
                                                                  ("descriptors", 15))))
    params = jax.eval_shape(model.init, jax.random.key(0))
    enc = params["encoder"]["params"]
    assert {"site_A", "site_B", "site_X", "project"} <= set(enc)
    assert enc["site_A_hidden"]["kernel"].shape == (5, 16)
    assert enc["project"]["kernel"].shape == (24, 12)
    assert Path(spec.encoder.module.rpartition(":")[0]).is_absolute()
