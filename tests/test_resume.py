"""Resume after a real SIGKILL, and what a killed run leaves behind.

A `nested-ae train` subprocess is killed with SIGKILL as soon as its first periodic checkpoint
is complete, restarted with `--resume`, and must end with exactly the numbers of an
uninterrupted run of the same config (run beside it). Exact equality is expected, not merely
close: a checkpoint holds the whole training carry (parameters, Adam state, best-so-far,
epoch counter) and the history, every random stream (shuffling, dropout) is derived from
(seed, fold, epoch) rather than carried, checkpoints fall on chunk boundaries so the resumed
run executes the same compiled chunks on the same inputs, and XLA on CPU is deterministic.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nested_ae_jax import checkpoint
from nested_ae_jax.config import config_to_dict, load_config
from nested_ae_jax.errors import RunDirError
from nested_ae_jax.io import atomic_write_text, dumps_toml
from nested_ae_jax.chain import load as load_chain
from nested_ae_jax.store import (load_scale, prepare_out_dir, resolved_config,
                                  resume_states)
from test_bad_inputs import good_frame, good_scale

EPOCHS, CHUNK, EVERY = 120, 10, 20


def write_config(tmp: Path) -> Path:
    good_frame(40).to_csv(tmp / "s.csv", index=False)
    table = good_scale(str(tmp / "s.csv"))
    table["training"].update(epochs=EPOCHS, chunk_epochs=CHUNK, checkpoint_every=EVERY)
    path = tmp / "cfg.toml"
    path.write_text(dumps_toml({"scales": {"s": table}}))
    return path


def train(cfg: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "NESTED_AE_DATA"}
    # a compilation cache shared by the three processes (speed only: the resumed process runs
    # the programs the others compiled, which is what it would compile itself)
    env |= {"JAX_COMPILATION_CACHE_DIR": str(cfg.parent / "jax_cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
    return subprocess.Popen([sys.executable, "-m", "nested_ae_jax.cli", "train", str(cfg),
                             "--out", str(out), "--quiet", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def steps(run: Path) -> list[int]:
    directory = run / "checkpoints" / "s"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) \
        if directory.is_dir() else []


def comparable(doc: dict) -> dict:
    """metrics.json without its timings."""
    doc = {k: v for k, v in doc.items() if k != "wall_seconds"}
    doc["scales"] = {k: {kk: vv for kk, vv in v.items() if kk != "seconds"}
                     for k, v in doc["scales"].items()}
    return doc


def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_numbers(tmp_path):
    cfg = write_config(tmp_path)
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    proc = train(cfg, killed)
    ref = train(cfg, reference)
    try:
        deadline = time.monotonic() + 240
        while not steps(killed) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before its first checkpoint: " + \
            proc.communicate()[1][-3000:]
        assert steps(killed), "no checkpoint appeared in time"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    # what the killed run left: no metrics.json (it never got that far), no half-written file
    # under its final name, and every checkpoint step it left restores completely
    assert not (killed / "metrics.json").exists()
    left = steps(killed)
    assert left and max(left) < EPOCHS and all(s % EVERY == 0 for s in left)
    assert checkpoint.latest_step(killed / "checkpoints" / "s") == max(left)
    for step in left:
        loaded = load_scale(killed, "s", step)
        assert int(loaded.state.epoch.max()) == step
    # and no later command takes it for a finished run, even if the kill came after
    # config.toml was written but before the final checkpoint
    with pytest.raises(RunDirError, match="holds an unfinished run .* --resume"):
        load_chain(killed)
    shutil.copytree(killed, tmp_path / "copy")
    atomic_write_text(tmp_path / "copy" / "config.toml", dumps_toml(config_to_dict(
        resolved_config(load_config(cfg), None))))
    with pytest.raises(RunDirError, match="holds an unfinished run .* --resume"):
        load_chain(tmp_path / "copy")

    # (a plain `train` into it is refused: see test_bad_inputs); --resume continues it
    proc = train(cfg, killed, "--resume")
    finish(proc)
    finish(ref)

    resumed = json.loads((killed / "metrics.json").read_text())
    uninterrupted = json.loads((reference / "metrics.json").read_text())
    assert comparable(resumed) == comparable(uninterrupted)
    for name in ("oof_predictions.csv", "history.csv"):
        assert (killed / name).read_bytes() == (reference / name).read_bytes(), name
    assert steps(killed)[-1] == EPOCHS
    leftovers = [p.name for p in killed.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_resume_starts_from_scratch_when_there_is_no_checkpoint_yet(tmp_path):
    cfg = resolved_config(load_config(write_config(tmp_path)), None)
    out = prepare_out_dir(tmp_path / "run", resume=True)
    assert resume_states(out, cfg) == {}
    (out / "checkpoints" / "s").mkdir(parents=True)  # killed before its first step completed
    (out / "checkpoints" / "s" / f"{EVERY}.orbax-checkpoint-tmp-1").mkdir()
    assert checkpoint.latest_step(out / "checkpoints" / "s") is None
    assert resume_states(prepare_out_dir(out, resume=True), cfg) == {}


def test_saving_a_step_that_is_on_disk_keeps_the_written_one(tmp_path):
    """A resumed run that reaches a step already checkpointed (e.g. --resume on a finished
    run) must neither fail (orbax refuses to overwrite a step) nor replace what was written."""
    import numpy as np

    from nested_ae_jax import checkpoint

    first = {"w": np.arange(3, dtype=np.float32)}
    checkpoint.save(tmp_path / "ck", 5, first, {"note": "first"})
    checkpoint.save(tmp_path / "ck", 5, {"w": np.zeros(3, np.float32)}, {"note": "second"})
    assert checkpoint.latest_step(tmp_path / "ck") == 5
    assert checkpoint.read_record(tmp_path / "ck")[1]["note"] == "first"
    restored = checkpoint.restore(tmp_path / "ck", first)
    np.testing.assert_array_equal(restored["w"], first["w"])
