"""Atomic file output never leaves a half-written file; dumps_toml round-trips through tomllib."""

import json
import math
import os
import tomllib

import numpy as np
import pandas as pd
import pytest

from nested_ae_jax import io
from nested_ae_jax.io import (
    atomic_savefig,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    dumps_toml,
)


def test_atomic_writers_write_the_expected_content(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "héllo\n")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    frame = pd.DataFrame({"x": [1, 2], "name": ["a", "b,c"]})
    atomic_write_csv(tmp_path / "c.csv", frame)
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "c.csv"), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.csv"]  # no temp files
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 != 0o600  # not the temp file's private mode


def test_atomic_write_json_converts_numpy_and_writes_non_finite_as_null(tmp_path):
    obj = {"mae": np.float32(0.5), "n": np.int64(3), "folds": np.arange(3)}
    obj |= {"bad": [float("nan"), np.inf], "ok": True}
    atomic_write_json(tmp_path / "m.json", obj)
    text = (tmp_path / "m.json").read_text()
    assert json.loads(text) == {"mae": 0.5, "n": 3, "folds": [0, 1, 2], "bad": [None, None], "ok": True}
    assert list(json.loads(text)) == ["mae", "n", "folds", "bad", "ok"]  # insertion order kept
    assert "NaN" not in text and '  "mae"' in text  # strict JSON, indent 2


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"version": 1})

    with pytest.raises(TypeError):  # serialisation fails before anything is written
        atomic_write_json(target, {"version": 2, "bad": object()})
    assert json.loads(target.read_text()) == {"version": 1}

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)  # fails after the temp file is complete
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, '{"version": 3}')
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_writer_raising_midway_leaves_no_partial_target(tmp_path):
    def half_then_fail(handle):
        handle.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        io._atomic_write(tmp_path / "new.csv", half_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_atomic_savefig_writes_the_format_named_by_the_suffix(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    atomic_savefig(tmp_path / "parity.png", fig, dpi=50)
    atomic_savefig(tmp_path / "parity.svg", fig)
    with pytest.raises(ValueError, match="suffixes"):
        atomic_savefig(tmp_path / "parity.docx", fig)
    plt.close(fig)
    assert (tmp_path / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "parity.svg").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parity.png", "parity.svg"]


TRICKY = {
    "name": 'quote " backslash \\ tab \t newline \n bell \x07 del \x7f unicode é 🙂',
    "A-B": 1,
    "x.y": -2,
    "with space": True,
    "": "empty key",
    "ünï": False,
    "floats": [1e-3, 0.1, -2.5, 1e300, 5e-324, 1.0],
    "ints": [0, -1, 2**62],
    "nested_list": [[1, 2], ["a"], []],
    "big": 1e16,
    "model": {
        "lr": 1e-3,
        "layers": [15, 12],
        "empty": {},
        "x.y": {"deep": {"deeper": "z"}, "after": 1},
    },
    "heads": [
        {"name": "bandgap", "loss": "mae", "opts": {"weight": 1.0}},
        {"name": "etl", "classes": ["TiO2", "SnO2"], "sub": [{"k": 1}, {"k": 2}]},
        {},
    ],
    "inline_mix": [1, {"a": 2}],
    "last_scalar": "after tables in the dict",
    "empty_top": {},
}


def test_dumps_toml_round_trips_tricky_values():
    assert tomllib.loads(dumps_toml(TRICKY)) == TRICKY


def test_dumps_toml_writes_scalars_before_sub_tables():
    text = dumps_toml({"t": {"sub": {"a": 1}, "b": 2}, "c": 3})
    lines = text.splitlines()
    assert lines[0] == "c = 3"
    assert lines.index("b = 2") < lines.index("[t.sub]")
    assert tomllib.loads(text) == {"t": {"sub": {"a": 1}, "b": 2}, "c": 3}


def test_dumps_toml_writes_inf_and_nan():
    obj = {"a": float("inf"), "b": -math.inf, "c": float("nan"), "n": np.float64(0.25)}
    back = tomllib.loads(dumps_toml(obj))
    assert back["a"] == math.inf and back["b"] == -math.inf and math.isnan(back["c"])
    assert back["n"] == 0.25 and type(back["n"]) is float


def test_dumps_toml_rejects_none_naming_the_key_path():
    with pytest.raises(ValueError, match=r"'model\.heads\[1\]\.weight'"):
        dumps_toml({"model": {"heads": [{"weight": 1.0}, {"weight": None}]}})
    with pytest.raises(ValueError, match=r"'a\.b\[2\]'"):
        dumps_toml({"a": {"b": [1, 2, None]}})
    with pytest.raises(ValueError, match="object"):
        dumps_toml({"a": object()})
