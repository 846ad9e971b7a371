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
