"""Crash-safe file output (write a temp file, fsync, rename) and a small TOML writer."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from .errors import NestedAEError

PathLike = str | os.PathLike[str]


class WriteError(NestedAEError, OSError):
    """A file could not be written (a missing or read-only folder, a full disk): one line
    naming the file; still an OSError for callers that catch those."""


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Calls ``write(handle)`` on a temp file beside ``path``, fsyncs it, then renames it onto
    ``path``. On any error the temp file is removed and ``path`` is untouched."""
    path = Path(path)
    try:
        tmp = tempfile.NamedTemporaryFile(
            delete=False, dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        with tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        # NamedTemporaryFile is 0600: give the target the mode an ordinary open() would.
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK
        os.chmod(tmp.name, mode)
        os.replace(tmp.name, path)
    except BaseException as err:
        try:
            os.unlink(tmp.name)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise _write_error(path, err) from None
        raise
    try:  # make the rename itself durable (best effort; not possible on every platform)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _write_error(path: Path, err: OSError) -> WriteError:
    error = WriteError(f"cannot write {path}: {err.strerror or err}; choose a writable "
                       "location (a folder that exists, with free space)")
    error.errno = err.errno
    return error


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically: readers see the old file or the new, never half."""
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Writes ``text`` to ``path`` atomically (no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_csv(path: PathLike, frame: pd.DataFrame) -> None:
    """Writes ``frame`` as CSV without its index, atomically."""
    atomic_write_text(path, frame.to_csv(index=False))


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays, tuples and paths made plain Python, and non-finite
    floats (NaN, +-inf) made ``None`` so the JSON is strict (``null``)."""
    if isinstance(obj, dict):
        return {
            (k.item() if isinstance(k, np.generic) else k): to_jsonable(v) for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Writes ``obj`` as strict JSON (indent 2, key order kept), atomically. NaN/inf become
    ``null``; numpy values become Python values; other types raise TypeError before writing."""
    text = json.dumps(
        to_jsonable(obj), indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False
    )
    atomic_write_text(path, text + "\n")


def atomic_savefig(path: PathLike, fig: Any, **savefig_kwargs: Any) -> None:
    """Saves a matplotlib figure to ``path`` atomically, in the format named by its suffix.

    Matplotlib is never imported by this module; only the given figure's own methods are used.
    """
    fmt = Path(path).suffix.lstrip(".").lower()
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        suffixes = ", .".join(sorted(supported))
        raise ValueError(f"cannot save a figure as '{path}': use one of the suffixes .{suffixes}")
    _atomic_write(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs))


# ---------------------------------------------------------------------------------------------- TOML

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        kind = type(key).__name__
        raise ValueError(f"TOML keys must be strings; key {key!r} at '{where or '<root>'}' is {kind}")
    return key if _BARE_KEY.fullmatch(key) else _toml_str(key)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, dict) for v in value)


def _toml_value(value: Any, where: str) -> str:
    """Inline TOML for a scalar, list (inline array) or dict (inline table)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        raise ValueError(
            f"TOML has no null: the value at '{where}' is None; drop the key or give it a value"
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # '0.001', '1e-05', 'inf', '-inf', 'nan' are all valid TOML floats
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(k, where)} = {_toml_value(v, f'{where}.{k}')}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }" if value else "{}"
    raise ValueError(
        f"cannot write a {type(value).__name__} to TOML at '{where}'; "
        "use str, int, float, bool, list or dict"
    )


def _toml_table(
    table: dict, header: list[str], where: str, lines: list[str], array: bool = False
) -> None:
    """Appends ``[header]`` (or ``[[header]]``), the table's plain values, then its sub-tables."""
    if header:
        name = ".".join(header)
        lines.extend(["", f"[[{name}]]" if array else f"[{name}]"])
    nested = []
    for k, v in table.items():
        path = f"{where}.{k}" if where else str(k)
        key = _toml_key(k, path)
        if isinstance(v, dict) or _is_table_array(v):
            nested.append((key, v, path))
        else:
            lines.append(f"{key} = {_toml_value(v, path)}")
    for key, v, path in nested:
        if isinstance(v, dict):
            _toml_table(v, [*header, key], path, lines)
        else:
            for i, item in enumerate(v):
                _toml_table(item, [*header, key], f"{path}[{i}]", lines, array=True)


def dumps_toml(obj: dict) -> str:
    """TOML text for a dict of str/int/float/bool, lists and nested dicts that ``tomllib.loads``
    reads back equal. Lists of dicts become arrays of tables; a table's plain values are written
    before its sub-tables. Raises ValueError naming the key path for None or unsupported values."""
    if not isinstance(obj, dict):
        raise ValueError(f"dumps_toml needs a dict at the top level, got {type(obj).__name__}")
    lines: list[str] = []
    _toml_table(obj, [], "", lines)
    return "\n".join(lines).lstrip("\n") + "\n"
