"""The record one explanation section returns (:class:`Section`) and the builder the sections
fill in order (:class:`Draft`). Nothing here computes or writes files."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import pandas as pd

Progress = Callable[[str], None]


class Table(NamedTuple):
    """A CSV to write: the frame (written without its index) and a one-line "what"."""

    frame: pd.DataFrame
    what: str


class Plot(NamedTuple):
    """A PNG to write: a matplotlib Figure and its one-line caption."""

    figure: Any
    caption: str


class Section(NamedTuple):
    """One section of RUN_DIR/explain/: everything it computed, nothing written yet.

    title: the index.md heading. lines: its prose, in order; a line that is the name of one of
    its tables or figures marks where that file's link or figure goes in index.md (files not
    named there follow the prose). tables: {FILE.csv: Table}; figures: {FILE.png: Plot}.
    summary: entries merged (recursively, in order) into summary.json. seconds: {"WHAT/SCALE":
    wall seconds} merged into summary.json's "seconds".
    """

    title: str
    lines: list[str]
    tables: dict[str, Table]
    figures: dict[str, Plot]
    summary: dict
    seconds: dict[str, float]


class Draft:
    """Collects one section's prose, tables and figures in the order they appear."""

    def __init__(self, title: str, *intro: str):
        self.title = title
        self.lines: list[str] = list(intro)
        self.tables: dict[str, Table] = {}
        self.figures: dict[str, Plot] = {}

    def text(self, line: str) -> None:
        self.lines.append(line)

    def table(self, name: str, frame: pd.DataFrame, what: str) -> None:
        self.tables[name] = Table(frame, what)
        self.lines.append(name)

    def figure(self, name: str, fig, caption: str) -> None:
        self.figures[name] = Plot(fig, caption)
        self.lines.append(name)

    def done(self, summary: dict, seconds: dict[str, float]) -> Section:
        return Section(self.title, self.lines, self.tables, self.figures, summary, seconds)


def safe_name(name: str) -> str:
    """``name`` usable in a file name: "/" becomes "-", any other character but letters,
    digits, "-", "_" and "." becomes "_"."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name.replace("/", "-"))
