"""Tests for nested_ae_jax.plots: structure of each figure, valid PNG output, metric text."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from nested_ae_jax import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _save_png(fig: Figure, path) -> bytes:
    fig.savefig(path, format="png", dpi=50)
    data = path.read_bytes()
    assert len(data) > 100
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"
    return data


def _metrics_text(fig: Figure) -> str:
    texts = [t for ax in fig.axes for t in ax.texts if t.get_gid() == "metrics"]
    assert len(texts) == 1
    return texts[0].get_text()


def _number_after(label: str, text: str) -> float:
    m = re.search(re.escape(label) + r"\s*=\s*([-+0-9.eE]+|nan)", text)
    assert m, f"{label!r} not found in {text!r}"
    return float(m.group(1))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- parity -----------------------------------------------------------------------------------


def test_parity_metrics_match_sklearn(rng, tmp_path):
    y = rng.uniform(0.4, 5.4, size=200)
    p = y + rng.normal(0, 0.3, size=200)
    folds = np.repeat(np.arange(5), 40)
    fig = plots.parity_figure(y, p, folds=folds, title="band gap", unit="eV")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    text = _metrics_text(fig)
    for label, expected in (
        ("MAE", mean_absolute_error(y, p)),
        ("RMSE", np.sqrt(mean_squared_error(y, p))),
        ("R$^2$", r2_score(y, p)),
    ):
        assert _number_after(label, text) == pytest.approx(expected, rel=1e-3)
    assert "n = 200" in text
    assert "eV" in text
    # one legend entry per fold
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [f"fold {k}" for k in range(5)]
    _save_png(fig, tmp_path / "parity.png")


def test_parity_without_folds_and_nonfinite(rng, tmp_path):
    y = rng.normal(size=50)
    p = y + 0.1
    p[3] = np.nan
    fig = plots.parity_figure(y, p, folds=None, title="x")
    assert len(fig.axes) == 1
    text = _metrics_text(fig)
    keep = np.isfinite(p)
    assert _number_after("MAE", text) == pytest.approx(mean_absolute_error(y[keep], p[keep]),
                                                       rel=1e-3)
    assert "n = 49" in text and "1 non-finite dropped" in text
    _save_png(fig, tmp_path / "parity2.png")


def test_parity_shape_mismatch():
    with pytest.raises(ValueError):
        plots.parity_figure(np.zeros(3), np.zeros(4), folds=None, title="x")


# --- learning curves --------------------------------------------------------------------------


def _history(n_folds=3, n_epochs=20, heads=("gap", "recon")):
    rows = []
    for f in range(n_folds):
        for e in range(n_epochs):
            row = {"fold": f, "epoch": e}
            for h in heads:
                row[f"train/{h}"] = 1.0 / (e + 1) + 0.01 * f
                row[f"val/{h}"] = 1.2 / (e + 1) + 0.01 * f
            row["train/total"] = sum(row[f"train/{h}"] for h in heads)
            row["val/total"] = sum(row[f"val/{h}"] for h in heads)
            rows.append(row)
    return pd.DataFrame(rows)


def test_learning_curves(tmp_path):
    hist = _history()
    fig = plots.learning_curves_figure(hist, title="AE1")
    assert len(fig.axes) == 3  # gap, recon, total
    assert [ax.get_title() for ax in fig.axes] == ["gap", "recon", "total"]
    for ax in fig.axes:
        assert ax.get_yscale() == "log"
        lines = ax.get_lines()
        assert len(lines) == 6  # 3 folds x (train, val)
        assert sorted(line.get_linestyle() for line in lines) == ["-"] * 3 + ["--"] * 3
        # one colour per fold, shared by train and val
        assert len({line.get_color() for line in lines}) == 3
    _save_png(fig, tmp_path / "lc.png")


def test_learning_curves_linear_when_nonpositive():
    hist = _history(n_folds=1, n_epochs=5, heads=("gap",))
    hist["train/gap"] -= 2.0
    fig = plots.learning_curves_figure(hist, title="t")
    assert len(fig.axes) == 2
    assert fig.axes[0].get_yscale() == "linear"
    assert fig.axes[1].get_yscale() == "log"


def test_learning_curves_requires_columns():
    with pytest.raises(ValueError):
        plots.learning_curves_figure(pd.DataFrame({"epoch": [0], "train/total": [1.0]}),
                                     title="t")


# --- latent maps ------------------------------------------------------------------------------


def test_latent_map_numeric_and_categorical(rng, tmp_path):
    z = rng.normal(size=(120, 2))
    colour_by = {
        "band gap (eV)": rng.uniform(1, 3, size=120),
        "PCE (%)": rng.uniform(0, 20, size=120),
        "ETL": np.array(["TiO2", "SnO2", "ZnO"] * 40),
        "HTL": np.array(["Spiro", "PTAA"] * 60, dtype=object),
    }
    fig = plots.latent_map_figure(z, colour_by, title="AE2 latent")
    # 4 panels + 2 colourbars for the numeric entries
    assert len(fig.axes) == 6
    panels = [ax for ax in fig.axes if ax.get_title() in colour_by]
    assert len(panels) == 4
    etl = next(ax for ax in panels if ax.get_title() == "ETL")
    legend = etl.get_legend()
    assert legend is not None
    assert sorted(t.get_text() for t in legend.get_texts()) == ["SnO2", "TiO2", "ZnO"]
    assert len(etl.collections) == 3  # one scatter per category
    htl = next(ax for ax in panels if ax.get_title() == "HTL")
    assert sorted(t.get_text() for t in htl.get_legend().get_texts()) == ["PTAA", "Spiro"]
    gap = next(ax for ax in panels if ax.get_title() == "band gap (eV)")
    assert gap.get_legend() is None
    assert gap.get_xlabel() == "latent 1" and gap.get_ylabel() == "latent 2"
    _save_png(fig, tmp_path / "latent.png")


def test_latent_map_validates_shapes(rng):
    with pytest.raises(ValueError):
        plots.latent_map_figure(rng.normal(size=(10, 3)), {}, title="t")
    with pytest.raises(ValueError):
        plots.latent_map_figure(rng.normal(size=(10, 2)), {"a": np.zeros(9)}, title="t")


# --- size scan --------------------------------------------------------------------------------


def test_size_scan(rng, tmp_path):
    sizes = np.repeat([2, 4, 6, 8, 12], 5)
    err = 0.5 / sizes + rng.normal(0, 0.01, size=sizes.size)
    table = pd.DataFrame({"latent_dim": sizes, "val_mae": err, "fold": np.tile(range(5), 5)})
    fig = plots.size_scan_figure(table, x="latent_dim", y="val_mae", title="scan")
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    # the error-bar line goes through the per-size means
    means = table.groupby("latent_dim")["val_mae"].mean().to_numpy()
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), means)
    assert list(ax.get_xticks()) == [2, 4, 6, 8, 12]
    _save_png(fig, tmp_path / "scan.png")


# --- heatmap ----------------------------------------------------------------------------------


def test_heatmap_annotated_small(rng, tmp_path):
    df = pd.DataFrame(rng.normal(size=(100, 6)), columns=[f"z{i}" for i in range(6)])
    corr = df.corr()
    fig = plots.heatmap_figure(corr, title="corr")
    assert len(fig.axes) == 2  # heatmap + colourbar
    ax = fig.axes[0]
    assert len(ax.texts) == 36
    assert [t.get_text() for t in ax.get_xticklabels()] == list(corr.columns)
    assert ax.texts[0].get_text() == "1.00"
    _save_png(fig, tmp_path / "heat.png")


def test_heatmap_large_not_annotated(rng):
    m = pd.DataFrame(rng.uniform(-1, 1, size=(30, 30)))
    fig = plots.heatmap_figure(m, title="big")
    assert len(fig.axes) == 2
    assert len(fig.axes[0].texts) == 0


def test_figures_are_independent(rng):
    a = plots.parity_figure(np.arange(5.0), np.arange(5.0), folds=None, title="a")
    b = plots.parity_figure(np.arange(5.0), np.arange(5.0) + 1, folds=None, title="b")
    assert a is not b
    assert a.axes[0].get_title() == "a" and b.axes[0].get_title() == "b"
    assert len(a.axes) == len(b.axes) == 1


def test_tune_figure_plots_every_trial_against_the_budget_and_each_setting(tmp_path):
    """One panel for the budget spent, one per setting; every trial a point in each; the
    best-so-far step is the running minimum of the plain-fold metric, a NaN skipped."""
    trials = pd.DataFrame({"rung": [0, 0, 0, 0, 1, 1], "epochs": [2, 2, 2, 2, 8, 8],
                           "setting": [0, 1, 2, 3, 1, 3],
                           "training.learning_rate": [1e-4, 1e-3, 1e-2, 3e-3, 1e-3, 3e-3],
                           "heads.y.dropout": [0.0, 0.1, 0.2, 0.3, 0.1, 0.3],
                           "cv y.mae": [0.9, 0.5, np.nan, 0.7, 0.4, 0.6]})
    keys = ["training.learning_rate", "heads.y.dropout"]
    fig = plots.tune_figure(trials, metric="y.mae", keys=keys,
                            log_keys=["training.learning_rate"])
    axes = fig.get_axes()
    assert len(axes) == 3
    assert [a.get_xlabel() for a in axes] == ["setting-epochs spent", *keys]
    assert axes[1].get_xscale() == "log" and axes[2].get_xscale() == "linear"
    for ax, x in zip(axes, [np.cumsum(trials.epochs), trials[keys[0]], trials[keys[1]]]):
        pts = np.concatenate([c.get_offsets() for c in ax.collections])
        assert len(pts) == len(trials)
        assert sorted(map(tuple, pts[~np.isnan(pts[:, 1])])) == sorted(
            (float(a), float(b)) for a, b in zip(x, trials["cv y.mae"]) if not np.isnan(b))
    best = axes[0].get_lines()[0].get_ydata()
    np.testing.assert_allclose(best, [0.9, 0.5, 0.5, 0.5, 0.4, 0.4])
    assert _save_png(fig, tmp_path / "t.png").startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="cv y.rmse"):
        plots.tune_figure(trials, metric="y.rmse", keys=keys)
    # shorter lengths of a run (epochs_trained 0) sit where that run has been paid for
    lengths = trials.assign(epochs=[2, 2, 2, 2, 4, 8], setting=[0, 1, 2, 3, 1, 1],
                            epochs_trained=[2, 2, 2, 2, 0, 8])
    fig = plots.tune_figure(lengths, metric="y.mae", keys=keys)
    pts = np.concatenate([c.get_offsets() for c in fig.get_axes()[0].collections])
    assert sorted(pts[:, 0]) == [2, 4, 6, 8, 16, 16]
