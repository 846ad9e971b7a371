"""Writes computed sections into the explain folder: every CSV and PNG (atomically), then
``summary.json`` and ``index.md`` (every section's prose, file links and figures with their
captions). The only module of the package that writes files."""

from __future__ import annotations

import time
from pathlib import Path

from .. import io
from .section import Section


def merge_summary(summary: dict, sections: list[Section]) -> dict:
    """Merges every section's summary entries (recursively, keeping key order) and its seconds
    (into ``summary["seconds"]``) into ``summary``, in place, section by section.

    Returns: ``summary``.
    """
    for section in sections:
        _merge(summary, section.summary)
        _merge(summary.setdefault("seconds", {}), section.seconds)
    return summary


def _merge(into: dict, entries: dict) -> None:
    for key, value in entries.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def write_sections(out, sections: list[Section], header: list[str], summary: dict, *,
                   started: float | None = None) -> list[str]:
    """Writes every table (CSV, without index) and figure (PNG, dpi 110) of ``sections`` into
    ``out``, then ``summary`` as summary.json and index.md: the ``header`` lines, then per
    section "## title" and its lines, a table's line as a link with its "what", a figure's
    line as the image with its caption in italics.

    Args: out: the folder (exists); header: index.md's first lines; summary: the merged
    summary (:func:`merge_summary`); started: ``time.perf_counter()`` at the start of the
    explanation: seconds.total is then stamped after the CSVs and PNGs are written. All of
    summary["seconds"] is rounded to 0.01 s before it is written.
    Returns: the file names written, in order (summary.json and index.md last).
    """
    out = Path(out)
    files: list[str] = []
    lines = list(header)
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        named = set(section.lines)
        rest = [n for n in [*section.tables, *section.figures] if n not in named]
        for line in [*section.lines, *rest]:
            if line in section.tables:
                table = section.tables[line]
                io.atomic_write_csv(out / line, table.frame)
                files.append(line)
                lines.append(f"- [`{line}`]({line}): {table.what}")
            elif line in section.figures:
                plot = section.figures[line]
                io.atomic_savefig(out / line, plot.figure, dpi=110)
                files.append(line)
                lines.append(f"\n![{line}]({line})\n\n*{plot.caption}*\n")
            else:
                lines.append(line)
    seconds = summary.setdefault("seconds", {})
    if started is not None:
        seconds["total"] = time.perf_counter() - started
    summary["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    io.atomic_write_json(out / "summary.json", summary)
    io.atomic_write_text(out / "index.md", "\n".join(lines) + "\n")
    return files + ["summary.json", "index.md"]


__all__ = ["merge_summary", "write_sections"]
