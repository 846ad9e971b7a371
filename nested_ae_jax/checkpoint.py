"""Orbax checkpoints of a scale's model batch: arrays (parameters, optimiser state, scalers,
history) plus a JSON record (config, data widths, category lists, folds).

Each scale has its own checkpoint directory ``RUN/checkpoints/SCALE/`` holding steps numbered
by epochs done. Orbax writes a step to a temporary directory and renames it when complete, so
a killed run never leaves a step that reads as valid. Restoring rebuilds the expected array
shapes from the JSON record and restores against them (so optax states keep their types).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .errors import RunDirError

FORMAT_VERSION = 3  # 2: records carry the feeders of every model; 3: Flax parameter trees


def _manager(directory: Path, max_to_keep: int | None = 2):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(directory.resolve(), options=options,
                                 item_names=("arrays", "record"))


def save(directory: str | Path, step: int, arrays: Any, record: dict) -> None:
    """Write ``arrays`` (a pytree) and ``record`` (JSON-able) as checkpoint ``step``. A step
    already on disk is kept as it is: only a resumed run meets one (same config, checked on
    resume), and it recomputes the same state; never deleting a written step means nothing
    already written is lost."""
    import orbax.checkpoint as ocp

    record = {"format_version": FORMAT_VERSION, **record}
    with _manager(Path(directory)) as mngr:
        if step in mngr.all_steps():
            return
        mngr.save(step, args=ocp.args.Composite(arrays=ocp.args.StandardSave(arrays),
                                                record=ocp.args.JsonSave(record)), force=True)
        mngr.wait_until_finished()


def latest_step(directory: str | Path) -> int | None:
    """The newest complete step in ``directory`` (None when there is none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    with _manager(directory) as mngr:
        return mngr.latest_step()


def read_record(directory: str | Path, step: int | None = None) -> tuple[int, dict]:
    """(step, JSON record) of a checkpoint, without touching the arrays."""
    directory = Path(directory)
    step = latest_step(directory) if step is None else step
    if step is None:
        raise RunDirError(f"no complete checkpoint in {directory} (deleted, or the run was "
                          f"killed before its first one); re-train with 'nested-ae train CONFIG "
                          f"--out RUN --overwrite'")
    path = directory / str(step) / "record" / "metadata"
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunDirError(f"checkpoint record unreadable: {path} ({err}); the checkpoint is "
                          "damaged, re-train with 'nested-ae train CONFIG --out RUN "
                          "--overwrite'") from None
    if record.get("format_version") != FORMAT_VERSION:
        raise RunDirError(f"{directory}: checkpoint format {record.get('format_version')} is "
                          f"not {FORMAT_VERSION}; re-train with this version")
    return step, record


def restore(directory: str | Path, template: Any, step: int | None = None) -> Any:
    """Arrays of checkpoint ``step`` (default latest), restored with the structure, shapes and
    dtypes of ``template``; a mismatch (different config or a damaged checkpoint) is an error."""
    import orbax.checkpoint as ocp

    directory = Path(directory)
    step, _ = read_record(directory, step)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), template)
    try:
        with _manager(directory) as mngr:
            out = mngr.restore(step, args=ocp.args.Composite(
                arrays=ocp.args.StandardRestore(abstract)))
    except Exception as err:  # orbax raises many types for damaged or mismatched data
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunDirError(f"cannot restore checkpoint {directory}/{step}: {first[:300]} (was "
                          "it written by a different config, or truncated?); re-train with "
                          "'nested-ae train CONFIG --out RUN --overwrite'") from None
    return out["arrays"]
