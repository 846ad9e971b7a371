"""The data sets shipped inside the package: loaders, ``data = "dataset:NAME"`` in configs and
run directories, and a built wheel that carries the files and reads them from a zip."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import REPO, tiny_scale
from nested_ae_jax import datasets
from nested_ae_jax.config import load_config, parse_config, resolve_data_path
from nested_ae_jax.data import read_table
from nested_ae_jax.errors import DataError

NAMES = ["bandgaps", "device_efficiencies", "synthetic", "synthetic_noisy"]


def test_list_datasets_names_every_shipped_set():
    assert datasets.list_datasets() == NAMES


@pytest.mark.parametrize("load, shape, columns", [
    (datasets.load_bandgaps, (494, 55), ["Gap", "K", "Pb", "I", "A_ion_rad", "X_En"]),
    (datasets.load_device_efficiencies, (2018, 70),
     ["JV_reverse_scan_PCE", "ETL_stack_sequence", "HTL_stack_sequence", "C_ion_radius", "a_1"]),
    (datasets.load_synthetic, (200, 13), [f"f{i}" for i in range(1, 14)]),
    (lambda: datasets.load_synthetic(noisy=True), (200, 18), ["z1", "z5", "f1", "f13"]),
])
def test_loaders_shapes_and_key_columns(load, shape, columns):
    frame = load()
    assert frame.shape == shape
    assert set(columns) <= set(frame.columns)


def test_loaded_values_are_the_published_ones():
    gap = datasets.load_bandgaps()["Gap"]
    assert gap.between(0.3, 5.4).all() and abs(gap.mean() - 2.73) < 0.01   # METHOD.md §2
    pce = datasets.load_device_efficiencies()["JV_reverse_scan_PCE"]
    assert abs(pce.mean() - 14.4) < 0.1 and pce.max() <= 23.5              # METHOD.md §3
    assert datasets.load_synthetic().columns[0] == "f1"   # the header-less file's first row is data
    assert np.isfinite(datasets.load_synthetic().to_numpy()).all()


def test_data_references_resolve_to_themselves_and_read(tmp_path):
    # the reference does not depend on --data-root or the config folder
    assert resolve_data_path("dataset:bandgaps", tmp_path, "/elsewhere") == "dataset:bandgaps"
    assert read_table("dataset:synthetic_noisy").shape == (200, 18)
    renamed = read_table("dataset:synthetic", tuple(f"g{i}" for i in range(13)))
    assert list(renamed.columns) == [f"g{i}" for i in range(13)]


@pytest.mark.parametrize("ref", ["dataset:bandgap", "dataset:", "dataset:PSC_bandgaps"])
def test_unknown_data_set_lists_the_known_ones(ref):
    with pytest.raises(DataError, match="unknown data set .*; shipped data sets: bandgaps, "
                                        "device_efficiencies, synthetic, synthetic_noisy"):
        resolve_data_path(ref, None)
    with pytest.raises(DataError, match="unknown data set"):
        read_table(ref)


def test_unknown_data_set_suggests_the_closest_name():
    with pytest.raises(DataError, match=r"'bandgap' \(did you mean 'bandgaps'\?\)"):
        datasets.load("dataset:bandgap")


def test_column_names_must_match_a_data_set():
    with pytest.raises(DataError, match="dataset:synthetic has 13 columns but column_names "
                                        "gives 2"):
        read_table("dataset:synthetic", ("a", "b"))


def test_experiment_configs_name_shipped_data_sets():
    """Every config under experiments/ reads shipped data sets; a search space for
    `nested-ae tune` (a TOML file of [dims] tables) parses as one; the table of cited figures
    (experiments/cited.toml) gives each figure a value, a unit and where it comes from."""
    import tomllib

    from nested_ae_jax.tune import load_space

    for path in sorted((REPO / "experiments").rglob("*.toml")):
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        if path.name == "cited.toml":
            assert doc and all(set(e) == {"value", "unit", "where"} for e in doc.values())
            continue
        if "dims" in doc:
            assert load_space(path).dims, path.name
            continue
        for spec in load_config(path).scales:
            assert datasets.is_reference(spec.data), f"{path.name}: {spec.data}"
            resolve_data_path(spec.data, None)  # a known name


def test_a_config_on_a_shipped_data_set_trains_and_its_run_works_anywhere(tmp_path,
                                                                          monkeypatch):
    from nested_ae_jax.explain.views import scale_view
    from nested_ae_jax.predict import predict_frame
    from nested_ae_jax.chain import load as load_chain
    from nested_ae_jax.store import prepare_out_dir, write_run
    from nested_ae_jax.runner import fit_config

    table = tiny_scale("atomic", data="dataset:bandgaps", epochs=2, batch=128,
                       cv={"kind": "kfold", "n_splits": 2})
    table["inputs"]["x"]["columns"] = ["A_ion_rad", "B_ion_rad", "X_ion_rad"]
    table["heads"]["y"]["target"] = "Gap"
    cfg = parse_config({"scales": {"atomic": table}}, str(tmp_path / "cfg" / "c.toml"))
    monkeypatch.setenv("NESTED_AE_DATA", str(tmp_path / "nothing here"))
    fit = fit_config(cfg, data_root=str(tmp_path / "nor here"))
    assert fit.results["atomic"].metrics["heads"]["y"]["pooled_val"]["n"] == 494
    write_run(fit, prepare_out_dir(tmp_path / "run"), data_root=str(tmp_path / "nor here"))
    assert 'data = "dataset:bandgaps"' in (tmp_path / "run" / "config.toml").read_text()

    monkeypatch.chdir(tmp_path)  # another folder: the run names no path
    run = load_chain(tmp_path / "run")
    pred = predict_frame(run, read_table(run.config.scale("atomic").data))
    assert len(pred) == 494 and np.isfinite(pred["atomic.y"]).all()
    assert scale_view(run, "atomic").data.frame.shape == (494, 55)


def test_design_falls_back_to_the_shipped_ion_table(tmp_path, tiny_frame, capsys):
    from nested_ae_jax.composition import SITES
    from nested_ae_jax.design.adaptor import _space_of_run

    tiny_frame.to_csv(tmp_path / "s.csv", index=False)  # no site-fraction columns
    cfg = parse_config({"scales": {"s": tiny_scale(data=str(tmp_path / "s.csv"))}})
    space = _space_of_run(SimpleNamespace(config=cfg), ["s"])
    assert space.ions == sum(SITES.values(), ())
    assert "shipped band-gap data set" in capsys.readouterr().err


def _build_wheel(tmp_path):
    """A wheel built from the repository's package files (copied, so no build/ or egg-info
    lands in the checkout), offline: the venv's setuptools (test extra), no index."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "nested_ae_jax", src / "nested_ae_jax",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path / "dist"),
                           str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("nested_ae_jax-*.whl")
    return wheel


def test_a_built_wheel_carries_the_data_and_reads_it_from_the_zip(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for file in ("PSC_bandgaps_dataset.csv", "PSC_efficiencies_dataset.csv",
                 "synthetic_data.csv", "synthetic_data_FuncAddNoise_200.csv",
                 "LICENSE-NestedAE-data.txt", "README.md"):
        assert f"nested_ae_jax/datasets/data/{file}" in names, file
    # the wheel itself on sys.path (zipimport), ahead of the editable install of the checkout
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(wheel)!r})
        import zipfile
        from importlib.resources import files
        import nested_ae_jax
        from nested_ae_jax import datasets
        from nested_ae_jax.data import read_table
        assert nested_ae_jax.__file__.startswith({str(wheel)!r}), nested_ae_jax.__file__
        assert isinstance(files(datasets.__name__), zipfile.Path)
        print([datasets.load(n).shape for n in datasets.list_datasets()],
              read_table("dataset:bandgaps").shape)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == "[(494, 55), (2018, 70), (200, 13), (200, 18)] (494, 55)" \
        .split()
