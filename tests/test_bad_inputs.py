"""Bad inputs: every one gives a one-line message naming the file, column or key and saying what
to do, a non-zero exit status and no traceback -- through the Python API (load_config /
fit_config / prepare_out_dir / chain.load / predict_frame) and through the command line, with the
same message.

Each case is a builder ``(ctx) -> Case``. Through the CLI each case is its own ``python -m
nested_ae_jax.cli`` process: by default every config case plus a representative of every other
kind (over 30 in all), NESTED_AE_FULL_CLI=1 for every case. Data files are tiny (30 rows) and
every error except the non-finite loss is raised before training starts.

Rule for a batch larger than the data (not an error): ``training.batch_size`` larger than a
fold's training rows means one full batch of all its training rows per epoch, as PyTorch's
DataLoader with ``drop_last=False`` would give (tested at the end of this file).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_scale
from nested_ae_jax.config import load_config
from nested_ae_jax.errors import ConfigError, DataError, NestedAEError, RunDirError
from nested_ae_jax.io import dumps_toml

N_ROWS = 30


def good_frame(n: int = N_ROWS) -> pd.DataFrame:
    """Numeric a, b, c, a 3-class column k, target y."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    k = np.array(["p", "q", "r"])[np.arange(n) % 3]
    y = x[:, 0] + 2 * x[:, 1] - x[:, 2] + (k == "q") * 1.5
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "k": k, "y": y})


def good_scale(data: str) -> dict:
    table = tiny_scale(data=data, epochs=2, batch=8)
    table["inputs"]["kind"] = {"kind": "categorical", "column": "k"}
    table["heads"]["kind"] = {"kind": "categorical", "input": "kind"}
    return table


DELETE = object()


def set_key(doc: dict, dotted: str, value: Any) -> dict:
    """``doc`` with ``a.b.c = value`` (a deep copy); value ``DELETE`` removes the key."""
    doc = copy.deepcopy(doc)
    *path, last = dotted.split(".")
    table = doc
    for p in path:
        table = table.setdefault(p, {})
    if value is DELETE:
        del table[last]
    else:
        table[last] = value
    return doc


# ----------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    cli: list[str]                 # arguments of `python -m nested_ae_jax.cli`
    api: Callable[[], Any]         # the same input through the Python API; must raise
    match: str                     # regex that the message must contain (CLI and API)
    error: type = NestedAEError    # the API's exception class
    env: dict = field(default_factory=dict)  # environment variables the case sets


@dataclass
class Ctx:
    tmp: Path
    trained: Callable[[], Path] = field(repr=False)

    def data(self, frame: pd.DataFrame | str | bytes | None, name: str = "s.csv") -> Path:
        path = self.tmp / name
        if isinstance(frame, pd.DataFrame):
            frame.to_csv(path, index=False)
        elif isinstance(frame, str):
            path.write_text(frame)
        elif isinstance(frame, bytes):
            path.write_bytes(frame)
        return path

    def config(self, doc: dict | str, name: str = "cfg.toml") -> Path:
        path = self.tmp / name
        path.write_text(doc if isinstance(doc, str) else dumps_toml(doc))
        return path

    def run_copy(self) -> Path:
        """A copy of a trained run directory (to damage)."""
        dest = self.tmp / "run"
        shutil.copytree(self.trained(), dest)
        return dest


def api_train(cfg: Path, out: Path) -> Callable[[], Any]:
    """What `nested-ae train` does, through the API."""
    def call():
        from nested_ae_jax.store import prepare_out_dir, resolved_config
        from nested_ae_jax.runner import fit_config
        conf = load_config(cfg)
        prepare_out_dir(out)
        return fit_config(resolved_config(conf, None))
    return call


def api_predict(run: Path, data: Path, **kw) -> Callable[[], Any]:
    def call():
        from nested_ae_jax.data import read_table
        from nested_ae_jax.predict import predict_frame
        from nested_ae_jax.chain import load as load_chain
        loaded = load_chain(run)
        return predict_frame(loaded, read_table(data), source=str(data), **kw)
    return call


def train_case(ctx: Ctx, doc: dict | str, match: str, error=NestedAEError) -> Case:
    cfg = ctx.config(doc)
    out = ctx.tmp / "out"
    return Case(["train", str(cfg), "--out", str(out), "--quiet"], api_train(cfg, out), match,
                error)


def data_case(ctx: Ctx, frame, match: str, error=DataError, **changes) -> Case:
    """The good config on a bad data file (``changes``: dotted config keys to set)."""
    path = ctx.data(frame)
    doc = {"scales": {"s": good_scale(str(path))}}
    for key, value in changes.items():
        doc = set_key(doc, "scales.s." + key.replace("__", "."), value)
    return train_case(ctx, doc, match, error)


def config_case(ctx: Ctx, match: str, doc: dict | str | None = None, **changes) -> Case:
    """The good data with a bad config."""
    path = ctx.data(good_frame())
    if doc is None:
        doc = {"scales": {"s": good_scale(str(path))}}
        for key, value in changes.items():
            doc = set_key(doc, "scales.s." + key.replace("__", "."), value)
    return train_case(ctx, doc, match, ConfigError)


def with_value(column: str, row: int, value) -> pd.DataFrame:
    frame = good_frame().astype({column: object})
    frame.loc[row, column] = value
    return frame


CASES: dict[str, Callable[[Ctx], Case]] = {}
KIND: dict[str, str] = {}  # case -> the section it is in (data, config, out, run)
_section = ""


def case(fn: Callable[[Ctx], Case]) -> Callable[[Ctx], Case]:
    name = fn.__name__.removeprefix("case_")
    CASES[name], KIND[name] = fn, _section
    return fn


# --- data files -------------------------------------------------------------------------------
_section = "data"

@case
def case_data_file_missing(ctx):
    return data_case(ctx, None, r"data file not found: .*s\.csv \(set --data-root")


@case
def case_data_file_empty(ctx):
    return data_case(ctx, "", r"data file is empty: .*s\.csv")


@case
def case_data_file_header_only(ctx):
    return data_case(ctx, "a,b,c,k,y\n", r"data file has a header but no rows: .*s\.csv")


@case
def case_data_file_unreadable_bytes(ctx):
    return data_case(ctx, b"\xff\xfe\x00\x81garbage\x9c\n\x00\xff,\x80\n",
                     r"cannot read data file .*s\.csv")


@case
def case_data_path_is_a_directory(ctx):
    (ctx.tmp / "s.csv").mkdir()
    return data_case(ctx, None, r"data path is a directory, not a CSV file: .*s\.csv")


@case
def case_column_missing(ctx):
    return data_case(ctx, good_frame().drop(columns="b"), r"s\.csv: no column 'b'")


@case
def case_column_misspelt(ctx):
    return data_case(ctx, good_frame().rename(columns={"c": "cc"}),
                     r"s\.csv: no column 'c' \(did you mean 'cc'\?\)")


@case
def case_column_duplicated(ctx):
    frame = good_frame()
    text = frame.to_csv(index=False).replace("a,b,c,k,y", "a,b,b,k,y", 1)
    return data_case(ctx, text, r"s\.csv: duplicated column name 'b'")


@case
def case_string_in_numeric_input(ctx):
    return data_case(ctx, with_value("b", 7, "abc"),
                     r"s\.csv: column 'b' row 9 is not a finite number \('abc'\)")


@case
def case_string_in_target(ctx):
    return data_case(ctx, with_value("y", 4, "n/a?"),
                     r"s\.csv: column 'y' row 6 is not a finite number \('n/a\?'\)")


@case
def case_nan_in_input(ctx):
    return data_case(ctx, with_value("a", 3, np.nan),
                     r"s\.csv: column 'a' row 5 is missing \(NaN\)")


@case
def case_inf_in_input(ctx):
    return data_case(ctx, with_value("c", 0, np.inf),
                     r"s\.csv: column 'c' row 2 is not a finite number \(.*inf")


@case
def case_nan_in_target(ctx):
    return data_case(ctx, with_value("y", 11, np.nan), r"s\.csv: column 'y' row 13 is missing")


@case
def case_inf_in_target(ctx):
    return data_case(ctx, with_value("y", 2, -np.inf),
                     r"s\.csv: column 'y' row 4 is not a finite number \(.*inf")


@case
def case_single_row(ctx):
    return data_case(ctx, good_frame().iloc[:1], r"s\.csv.*only 1 row")


@case
def case_single_row_without_cv(ctx):
    return data_case(ctx, good_frame().iloc[:1], r"s\.csv.*only 1 row", cv={"kind": "none"})


@case
def case_fewer_rows_than_folds(ctx):
    return data_case(ctx, good_frame().iloc[:4],
                     r"s\.csv: only 4 rows for scales\.s\.cv\.n_splits = 5 folds; use more rows",
                     cv__n_splits=5)


@case
def case_constant_input_column(ctx):
    return data_case(ctx, good_frame().assign(b=2.5),
                     r"s\.csv: input group 'x' column 'b' is constant")


@case
def case_single_class_categorical(ctx):
    return data_case(ctx, good_frame().assign(k="p"),
                     r"s\.csv: categorical column 'k' has a single class")


@case
def case_empty_categorical_value(ctx):
    return data_case(ctx, with_value("k", 5, np.nan), r"s\.csv: column 'k' row 7 is empty")


@case
def case_head_target_missing(ctx):
    return data_case(ctx, good_frame(), r"s\.csv: no column 'yy' \(did you mean 'y'\?\)",
                     heads__y__target="yy")


# --- configs ----------------------------------------------------------------------------------
_section = "config"

@case
def case_config_file_missing(ctx):
    cfg = ctx.tmp / "nope.toml"
    return Case(["train", str(cfg), "--out", str(ctx.tmp / "out")], lambda: load_config(cfg),
                r"config file not found: .*nope\.toml", ConfigError)


@case
def case_config_not_toml(ctx):
    return config_case(ctx, r"cfg\.toml: not valid TOML", doc="[scales.s\ndata = 1\n")


@case
def case_config_without_scales(ctx):
    return config_case(ctx, r"cfg\.toml: needs at least one \[scales.NAME\] table",
                       doc={"chain": {"feed": "fold"}})


@case
def case_unknown_key(ctx):
    return config_case(ctx, r"scales\.s\.encoder: unknown key 'latent_sise' "
                       r"\(did you mean 'latent_size'\?\)", encoder__latent_sise=3)


@case
def case_unknown_top_level_key(ctx):
    path = ctx.data(good_frame())
    return config_case(ctx, r"unknown top-level key 'scale' \(did you mean 'scales'\?\)",
                       doc={"scales": {"s": good_scale(str(path))}, "scale": {"x": 1}})


@case
def case_missing_required_key(ctx):
    return config_case(ctx, r"scales\.s: missing required key 'data'", data=DELETE)


@case
def case_wrong_type(ctx):
    return config_case(ctx, r"scales\.s\.training\.epochs must be an integer, got 'ten'",
                       training__epochs="ten")


@case
def case_wrong_type_list(ctx):
    return config_case(ctx, r"scales\.s\.encoder\.hidden must be a list of .*integers, got 4",
                       encoder__hidden=4)


@case
def case_negative_size(ctx):
    return config_case(ctx, r"scales\.s\.encoder\.latent_size must be > 0, got -2",
                       encoder__latent_size=-2)


@case
def case_zero_batch(ctx):
    return config_case(ctx, r"scales\.s\.training\.batch_size must be > 0, got 0",
                       training__batch_size=0)


@case
def case_zero_epochs(ctx):
    return config_case(ctx, r"scales\.s\.training\.epochs must be > 0, got 0",
                       training__epochs=0)


@case
def case_zero_hidden_width(ctx):
    return config_case(ctx, r"scales\.s\.heads\.y\.hidden must be > 0, got 0",
                       heads__y__hidden=[8, 0])


@case
def case_one_fold(ctx):
    return config_case(ctx, r"scales\.s\.cv\.n_splits must be >= 2, got 1", cv__n_splits=1)


@case
def case_dropout_out_of_range(ctx):
    return config_case(ctx, r"scales\.s\.heads\.y\.dropout must be < 1\.0, got 1\.5",
                       heads__y__dropout=1.5)


@case
def case_negative_learning_rate(ctx):
    return config_case(ctx, r"scales\.s\.training\.learning_rate must be > 0\.0, got -0\.1",
                       training__learning_rate=-0.1)


@case
def case_unknown_activation(ctx):
    return config_case(ctx, r"scales\.s\.encoder\.activation = 'rleu' is not one of: linear, "
                       r"relu.*\(did you mean 'relu'\?\)", encoder__activation="rleu")


@case
def case_unknown_loss(ctx):
    return config_case(ctx, r"scales\.s\.heads\.y\.loss = 'mea' is not one of: mae.*"
                       r"\(did you mean 'm(ae|se)'\?\)", heads__y__loss="mea")


@case
def case_head_input_group_missing(ctx):
    return config_case(ctx, r"scales\.s\.heads\.x\.input = 'xx' is not an input group of "
                       r"scale 's' \(did you mean 'x'\?\)", heads__x__input="xx")


def _two_scales(ctx: Ctx, up_of_first: str | None, up_of_second: str) -> dict:
    path = str(ctx.data(good_frame()))
    first, second = good_scale(path), good_scale(path)
    if up_of_first:
        first["inputs"]["z"] = {"kind": "latent", "scale": up_of_first}
    second["inputs"]["z"] = {"kind": "latent", "scale": up_of_second}
    return {"scales": {"atomic": first, "device": second}}


@case
def case_link_to_missing_scale(ctx):
    return config_case(ctx, r"scales\.device\.inputs\.z\.scale = 'atomc' is not a scale of "
                       r"this config \(did you mean 'atomic'\?\)",
                       doc=_two_scales(ctx, None, "atomc"))


@case
def case_cycle_in_scale_links(ctx):
    return config_case(ctx, r"scales\.atomic\.inputs\.z\.scale = 'device': scales must come "
                       r"after the scales they take latents from \(cycle",
                       doc=_two_scales(ctx, "device", "atomic"))


@case
def case_scale_takes_its_own_latent(ctx):
    return config_case(ctx, r"scales\.device\.inputs\.z: a scale cannot take its own latent",
                       doc=_two_scales(ctx, None, "device"))


# --- training ---------------------------------------------------------------------------------
_section = "training"


@case
def case_non_finite_loss(ctx):
    """A huge learning rate: the guard after each compiled chunk names scale, fold, epoch and
    head (the error is found at the end of the first chunk, so this case trains 5 epochs)."""
    return data_case(ctx, good_frame(), r"scale 's' fold \d: non-finite training loss at epoch "
                     r"\d+ \(head '(y|x|kind)'\); lower scales\.s\.training\.learning_rate",
                     NestedAEError, training__learning_rate=1e30, training__epochs=5)


@case
def case_fit_larger_than_the_memory(ctx):
    """The estimate before training against the budget (NESTED_AE_MEMORY_GB; default the
    machine's available memory): the scale, its rows and models, the settings to change."""
    c = data_case(ctx, good_frame(), r"scale 's': 30 rows x 3 models need about \d+\.\d GB of "
                  r"memory, 0\.5 GB available; use fewer rows, fewer folds "
                  r"\(scales\.s\.cv\.n_splits\) or ensemble members .* NESTED_AE_MEMORY_GB",
                  NestedAEError)
    return Case(c.cli, c.api, c.match, c.error, env={"NESTED_AE_MEMORY_GB": "0.5"})


# --- output directories -----------------------------------------------------------------------
_section = "out"

@case
def case_out_already_holds_a_run(ctx):
    run = ctx.run_copy()
    cfg = run / "config.toml"
    return Case(["train", str(cfg), "--out", str(run), "--quiet"], api_train(cfg, run),
                r"run already holds a run; pass --overwrite to replace it", RunDirError)


@case
def case_out_under_a_regular_file(ctx):
    cfg = ctx.config({"scales": {"s": good_scale(str(ctx.data(good_frame())))}})
    (ctx.tmp / "afile").write_text("x")
    out = ctx.tmp / "afile" / "run"
    return Case(["train", str(cfg), "--out", str(out), "--quiet"], api_train(cfg, out),
                r"cannot write to --out .*afile/run", RunDirError)


@case
def case_out_is_a_file(ctx):
    cfg = ctx.config({"scales": {"s": good_scale(str(ctx.data(good_frame())))}})
    out = ctx.tmp / "afile"
    out.write_text("x")
    return Case(["train", str(cfg), "--out", str(out), "--quiet"], api_train(cfg, out),
                r"--out .*afile exists and is not a directory", RunDirError)


@case
def case_out_not_creatable(ctx):
    """An --out no user can create (a name over the file system's 255-byte limit): fails as
    root too, unlike permission bits."""
    cfg = ctx.config({"scales": {"s": good_scale(str(ctx.data(good_frame())))}})
    out = ctx.tmp / ("r" * 300) / "run"
    return Case(["train", str(cfg), "--out", str(out), "--quiet"], api_train(cfg, out),
                r"cannot write to --out .*rrrr/run: File name too long", RunDirError)


@case
def case_predict_out_not_writable(ctx):
    run = ctx.trained()
    data = ctx.data(good_frame())
    (ctx.tmp / "afile").write_text("x")
    out = ctx.tmp / "afile" / "pred.csv"

    def api():
        from nested_ae_jax import io
        io.atomic_write_csv(out, api_predict(run, data)())
    return Case(["predict", str(run), "--data", str(data), "--out", str(out)], api,
                r"cannot write .*afile/pred\.csv")


# --- trained runs and checkpoints -------------------------------------------------------------
_section = "run"

def predict_case(ctx: Ctx, run: Path, frame, match: str, error=NestedAEError, *extra: str,
                 **kw) -> Case:
    data = ctx.data(frame, "new.csv")
    return Case(["predict", str(run), "--data", str(data), "--out", str(ctx.tmp / "p.csv"),
                 *extra], api_predict(run, data, **kw), match, error)


@case
def case_predict_unknown_category(ctx):
    return predict_case(ctx, ctx.trained(), with_value("k", 3, "zz"),
                        r"new\.csv: column 'k' has unknown category \['zz'\]; the model knows "
                        r"\['p', 'q', 'r'\]", DataError)


@case
def case_predict_column_missing(ctx):
    return predict_case(ctx, ctx.trained(), good_frame().drop(columns="a"),
                        r"new\.csv: no column 'a'", DataError)


@case
def case_predict_nan_input(ctx):
    return predict_case(ctx, ctx.trained(), with_value("a", 1, np.nan),
                        r"new\.csv: column 'a' row 3 is missing", DataError)


@case
def case_predict_data_file_missing(ctx):
    run = ctx.trained()
    data = ctx.tmp / "absent.csv"
    return Case(["predict", str(run), "--data", str(data), "--out", str(ctx.tmp / "p.csv")],
                api_predict(run, data), r"data file not found: .*absent\.csv", DataError)


@case
def case_predict_fold_out_of_range(ctx):
    return predict_case(ctx, ctx.trained(), good_frame(), r"--fold 7: scale 's' has folds 0\.\.2",
                        NestedAEError, "--fold", "7", fold=7)


@case
def case_predict_unknown_scale(ctx):
    return predict_case(ctx, ctx.trained(), good_frame(),
                        r"no scale named 'ss' \(did you mean 's'\?\)", ConfigError,
                        "--scale", "ss", scale="ss")


@case
def case_run_dir_missing(ctx):
    return predict_case(ctx, ctx.tmp / "no_run", good_frame(), r"run directory not found: "
                        r".*no_run", RunDirError)


@case
def case_run_dir_without_config(ctx):
    (ctx.tmp / "empty").mkdir()
    return predict_case(ctx, ctx.tmp / "empty", good_frame(),
                        r"empty is not a run directory \(no config\.toml\); train one",
                        RunDirError)


@case
def case_run_unfinished(ctx):
    run = ctx.run_copy()
    (run / "config.toml").unlink()  # killed before the end: checkpoints, no config.toml yet
    return predict_case(ctx, run, good_frame(), r"run holds an unfinished run \(killed or still "
                        r"training\); continue it with 'nested-ae train CONFIG --out .*run "
                        r"--resume'", RunDirError)


@case
def case_checkpoint_directory_missing(ctx):
    run = ctx.run_copy()
    shutil.rmtree(run / "checkpoints")
    return predict_case(ctx, run, good_frame(), r"no complete checkpoint in .*checkpoints/s",
                        RunDirError)


@case
def case_checkpoint_step_deleted(ctx):
    run = ctx.run_copy()
    for step in (run / "checkpoints" / "s").iterdir():
        if step.name.isdigit():
            shutil.rmtree(step)
    return predict_case(ctx, run, good_frame(), r"no complete checkpoint in .*checkpoints/s",
                        RunDirError)


def _step(run: Path) -> Path:
    steps = sorted((p for p in (run / "checkpoints" / "s").iterdir() if p.name.isdigit()),
                   key=lambda p: int(p.name))
    return steps[-1]


@case
def case_checkpoint_arrays_deleted(ctx):
    run = ctx.run_copy()
    shutil.rmtree(_step(run) / "arrays")
    return predict_case(ctx, run, good_frame(), r"checkpoints/s.*(truncated|incomplete)",
                        RunDirError)


@case
def case_checkpoint_array_files_truncated(ctx):
    run = ctx.run_copy()
    files = [p for p in (_step(run) / "arrays").rglob("*") if p.is_file()]
    assert files
    for p in files:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    return predict_case(ctx, run, good_frame(), r"cannot restore checkpoint .*checkpoints/s/2"
                        r".*truncated", RunDirError)


@case
def case_checkpoint_record_truncated(ctx):
    run = ctx.run_copy()
    record = _step(run) / "record" / "metadata"
    record.write_text(record.read_text()[:100])
    return predict_case(ctx, run, good_frame(), r"checkpoint record unreadable: "
                        r".*checkpoints/s/2/record/metadata", RunDirError)


@case
def case_checkpoint_from_a_different_config(ctx):
    run = ctx.run_copy()
    cfg = run / "config.toml"
    cfg.write_text(cfg.read_text().replace("latent_size = 2", "latent_size = 3"))
    return predict_case(ctx, run, good_frame(), r"checkpoint of scale 's' was written by a "
                        r"different config than config\.toml", RunDirError)


@case
def case_resume_with_a_different_config(ctx):
    run = ctx.run_copy()
    text = (run / "config.toml").read_text().replace("latent_size = 2", "latent_size = 3")
    cfg = ctx.config(text, "other.toml")

    def api():
        from nested_ae_jax.store import prepare_out_dir, resolved_config, resume_states
        out = prepare_out_dir(run, resume=True)
        return resume_states(out, resolved_config(load_config(cfg), None))
    return Case(["train", str(cfg), "--out", str(run), "--resume", "--quiet"], api,
                r"--resume: .*checkpoints/s was written by a different config; use "
                r"--overwrite", RunDirError)


# ----------------------------------------------------------------------------------------------
# Running the cases


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A tiny trained run (3 folds, 2 epochs): the config.toml and checkpoints that `nested-ae
    train` writes (predict reads nothing else; tables and figures are skipped for speed)."""
    from nested_ae_jax.config import config_to_dict
    from nested_ae_jax.io import atomic_write_text
    from nested_ae_jax.store import prepare_out_dir, resolved_config, save_scale
    from nested_ae_jax.runner import fit_config

    tmp = tmp_path_factory.mktemp("trained")
    good_frame().to_csv(tmp / "s.csv", index=False)
    cfg = resolved_config(load_config(Ctx(tmp, None).config(
        {"scales": {"s": good_scale(str(tmp / "s.csv"))}})), None)
    out = prepare_out_dir(tmp / "run")
    fit = fit_config(cfg)
    atomic_write_text(out / "config.toml", dumps_toml(config_to_dict(cfg)))
    r = fit.results["s"]
    save_scale(out, cfg, r.trained, r.state, r.history)
    return out


@pytest.fixture
def ctx(tmp_path, request) -> Ctx:
    return Ctx(tmp_path, lambda: request.getfixturevalue("trained_run"))


def run_cli(args: list[str], cwd: Path, extra: dict | None = None
            ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NESTED_AE_DATA"} | (extra or {})
    return subprocess.run([sys.executable, "-m", "nested_ae_jax.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=env)


def check_message(message: str, match: str) -> None:
    assert "\n" not in message.strip(), f"message is not one line:\n{message}"
    assert re.search(match, message), f"{match!r} not in {message!r}"
    assert "Traceback" not in message


# Every case goes through the API. Through the CLI: every config case and a representative of
# each other kind, since each CLI case is a fresh interpreter that imports jax, orbax and
# scikit-learn (2-3 s of CPU). NESTED_AE_FULL_CLI=1 runs every case through the CLI.
CLI_HEAVY = ("data_file_missing", "column_misspelt", "string_in_numeric_input", "nan_in_target",
             "single_row", "out_already_holds_a_run", "predict_unknown_category",
             "checkpoint_array_files_truncated", "resume_with_a_different_config",
             "predict_out_not_writable", "non_finite_loss", "fit_larger_than_the_memory")
CLI_CASES = list(CASES) if os.environ.get("NESTED_AE_FULL_CLI") == "1" else \
    [n for n in CASES if KIND[n] == "config" or n in CLI_HEAVY]


def test_at_least_30_distinct_cases_through_cli_and_api():
    assert len(CASES) >= 30 and len(CLI_CASES) >= 30


@pytest.fixture(scope="module")
def cli_runs(request, tmp_path_factory) -> dict:
    """{case: (Case, future of its CLI process)} for the selected CLI tests, started together
    (one process per case, as many at a time as there are cores)."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = [n for n in CLI_CASES if any(
        getattr(item, "originalname", "") == "test_bad_input_via_cli"
        and item.callspec.params.get("name") == n for item in request.session.items)]
    pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)))
    request.addfinalizer(pool.shutdown)
    runs = {}
    for name in wanted:
        tmp = tmp_path_factory.mktemp(f"cli_{name}")
        c = CASES[name](Ctx(tmp, lambda: request.getfixturevalue("trained_run")))
        runs[name] = (c, pool.submit(run_cli, c.cli, tmp, c.env))
    return runs


@pytest.mark.parametrize("name", CLI_CASES)
def test_bad_input_via_cli(name, cli_runs):
    c, future = cli_runs[name]
    proc = future.result()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    check_message(lines[0], c.match)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_via_api(name, ctx, monkeypatch):
    c = CASES[name](ctx)
    for key, value in c.env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(NestedAEError) as info:
        c.api()
    assert isinstance(info.value, c.error), repr(info.value)
    check_message(str(info.value), c.match)


def test_overwrite_replaces_a_run_and_resume_keeps_it(tmp_path, trained_run):
    from nested_ae_jax.store import prepare_out_dir

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "notes.txt").write_text("mine")
    prepare_out_dir(run, resume=True)
    assert (run / "config.toml").exists() and (run / "checkpoints").is_dir()
    prepare_out_dir(run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # only the run's files go


# ----------------------------------------------------------------------------------------------
# Batch larger than the data: legal, one full batch per epoch


def test_batch_larger_than_the_training_rows_is_one_full_batch_per_epoch(tmp_path):
    from nested_ae_jax.config import parse_config
    from nested_ae_jax.runner import fit_config

    path = tmp_path / "s.csv"
    good_frame().to_csv(path, index=False)

    def metrics(batch):
        table = set_key(good_scale(str(path)), "training.batch_size", batch)
        table = set_key(table, "training.epochs", 3)
        fit = fit_config(parse_config({"scales": {"s": table}}))
        return fit.results["s"].metrics["heads"]["y"]["pooled_val"]

    n_train = N_ROWS - N_ROWS // 3  # 3 folds of 10 rows: 20 training rows each
    huge, exact = metrics(1000), metrics(n_train)
    assert np.isfinite(huge["mae"])
    for key in ("mae", "rmse", "r2"):
        assert huge[key] == pytest.approx(exact[key], rel=1e-4)  # padding changes rounding


@pytest.mark.parametrize("value", ["nan", "-1", "0", "lots"])
def test_a_memory_budget_that_is_not_a_positive_number_is_refused(monkeypatch, value):
    from nested_ae_jax.memory import available_bytes

    monkeypatch.setenv("NESTED_AE_MEMORY_GB", value)
    with pytest.raises(NestedAEError, match="NESTED_AE_MEMORY_GB=.*not a positive number"):
        available_bytes()
