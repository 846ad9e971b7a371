"""The command line: the demo job, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nested_ae_jax.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_demo_trains_a_two_scale_chain_and_writes_a_run(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", str(out), "--epochs", "30", "--rows", "200", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "scale2.y2" in proc.stdout and "wall time" in proc.stdout
    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc["scales"]) == {"scale1", "scale2"}
    mae = doc["scales"]["scale2"]["heads"]["y2"]["pooled_val"]["mae"]
    # the same validation rows (every row, out of fold): the reported MAE is the file's, and
    # well below any constant's: each fold's training mean, or the best constant in hindsight
    # (the median of every row; measured: model 0.27, mean 0.50, median 0.47)
    oof = pd.read_csv(out / "oof_predictions.csv").query("scale == 'scale2'")
    y, fold = oof["y2.true"].to_numpy(), oof["fold"].to_numpy()
    assert len(y) == 200 and mae == pytest.approx(np.abs(oof["y2"] - y).mean(), rel=1e-5)
    fold_mean = np.array([y[fold != k].mean() for k in range(5)])[fold]
    constant = min(np.abs(fold_mean - y).mean(), np.abs(y - np.median(y)).mean())
    assert mae < 0.75 * constant
    pred = tmp_path / "pred.csv"
    proc = run_cli("predict", str(out), "--data", str(out / "data" / "scale2.csv"),
                   "--out", str(pred))
    assert proc.returncode == 0, proc.stderr
    header = pred.read_text().splitlines()[0].split(",")
    assert {"scale2.y2", "scale2.y2.std", "scale1.y1", "scale2.kind"} <= set(header)
    proc = run_cli("demo", "--out", str(out), "--epochs", "5", "--quiet")
    assert proc.returncode == 2 and "already holds a run" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "nope.toml", "--out", "x"], "error: config file not found: nope.toml"),
    (["predict", "no_run_here", "--data", "d.csv", "--out", "p.csv"],
     "error: run directory not found"),
    (["tune", "nope.toml", "--out", "x"], "error: config file not found: nope.toml"),
])
def test_input_errors_are_one_line_without_traceback(tmp_path, args, message):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_debug_flag_shows_the_traceback(tmp_path):
    proc = run_cli("--debug", "train", "nope.toml", "--out", "x", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_lists_every_command():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("demo", "train", "predict", "tune"):
        assert command in proc.stdout


def test_compilation_cache_folder_default_relocated_off_and_explicit(monkeypatch, tmp_path):
    from nested_ae_jax.cli import compilation_cache_dir

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.delenv("NESTED_AE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache_dir() == str(tmp_path / "nested_ae_jax" / "jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compilation_cache_dir() == str(tmp_path / "home" / ".cache" / "nested_ae_jax" / "jax")
    monkeypatch.setenv("NESTED_AE_CACHE", str(tmp_path / "mine"))
    assert compilation_cache_dir() == str(tmp_path / "mine")
    monkeypatch.setenv("NESTED_AE_CACHE", "off")
    assert compilation_cache_dir() is None
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "explicit"))
    assert compilation_cache_dir() == str(tmp_path / "explicit")


@pytest.fixture
def tiny_sweep_config(tmp_path, tiny_frame):
    """A one-scale config of 6 epochs in chunks of 3 (so --lengths 2 scores 3 and 6)."""
    from conftest import tiny_scale
    from nested_ae_jax.io import dumps_toml

    tiny_frame.to_csv(tmp_path / "s.csv", index=False)
    scale = tiny_scale(data=str(tmp_path / "s.csv"), epochs=6)
    scale["training"]["chunk_epochs"] = 3
    (tmp_path / "c.toml").write_text(dumps_toml({"scales": {"s": scale}}))
    return tmp_path / "c.toml"


def test_sweep_lengths_scores_each_combination_at_each_length_of_one_run(
        tiny_sweep_config, tmp_path, capsys):
    """--lengths 2: one row per combination and length (3 and 6 epochs); the full-length rows
    are the plain sweep's, to the float."""
    from nested_ae_jax.cli import main

    base = ["sweep", str(tiny_sweep_config), "--grid", "heads.y.dropout=0,0.1", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, "--lengths", "2", "--out", str(tmp_path / "both")]) == 0
    assert "2 combinations x 2 lengths x folds = 6 models" in capsys.readouterr().out
    plain = pd.read_csv(tmp_path / "plain" / "sweep_runs.csv")
    both = pd.read_csv(tmp_path / "both" / "sweep_runs.csv")
    assert "training.epochs" not in plain and len(plain) == 2
    assert both["training.epochs"].tolist() == [3, 6, 3, 6]
    assert both["heads.y.dropout"].tolist() == [0, 0, 0.1, 0.1]
    full = both[both["training.epochs"] == 6]
    np.testing.assert_allclose(full[["y.mae", "y.rmse"]].to_numpy(float),
                               plain[["y.mae", "y.rmse"]].to_numpy(float), rtol=1e-6)
    best = json.loads((tmp_path / "both" / "best.json").read_text())
    assert best["y.mae"] == both["y.mae"].min() and best["training.epochs"] in (3, 6)


def test_sweep_lengths_below_one_is_a_one_line_error_before_training(
        tiny_sweep_config, tmp_path, capsys, monkeypatch):
    from nested_ae_jax import fitting
    from nested_ae_jax.cli import main

    monkeypatch.setattr(fitting, "train_models", lambda *a, **k: pytest.fail("trained"))
    assert main(["sweep", str(tiny_sweep_config), "--grid", "heads.y.dropout=0,0.1",
                 "--lengths", "0", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == ["error: sweep --lengths 0: use a whole number, at least 1"]
    assert not (tmp_path / "out").exists()


def test_a_sweep_where_every_setting_diverged_still_writes_its_tables(
        tiny_sweep_config, tmp_path, capsys):
    """Learning rates of 1e30: every model's training loss goes non-finite. One error line
    names the choice and the table, and sweep_runs.csv holds the NaN rows with the number of
    models that diverged; no best.json is written."""
    from nested_ae_jax.cli import main

    out = tmp_path / "out"
    assert main(["sweep", str(tiny_sweep_config), "--grid",
                 "training.learning_rate=1e30,1e31", "--quiet", "--out", str(out)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("error: sweep, best by y.mae: all 2 setting(s) it may choose "
                          "diverged") and err.endswith("sweep_runs.csv (column diverged)")
    runs = pd.read_csv(out / "sweep_runs.csv")
    assert runs["y.mae"].isna().all() and (runs["diverged"] == 3).all()  # 3 fold models
    assert (out / "sweep_folds.csv").exists() and not (out / "best.json").exists()
