"""The pages' check of experiments/reproduce.py: quoted figures (``0.165<!--fig:ae1.mae-->``)
against the results file, fully-marked tables, and printing the pages from the results."""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from figure_records import ROOT

# ---------------------------------------------------------------- the pages' check ----------
# A quoted figure is a number directly followed by its marker, e.g. ``0.165<!--fig:ae1.mae-->``
# (HTML comments render invisibly). A table whose header row is preceded by the line
# ``<!--figs:table-->`` is fully marked: every number in its body cells must carry a marker,
# except in the first column (labels) and in columns whose header names the paper (cited
# figures) or a target (goals).

# a sign only where it cannot be a dash of a range: not after a digit or a marker ("a-b")
MARKED = re.compile(r"(?P<num>(?:(?<![\d>])[-+])?\d[\d,]*(?:\.\d+)?)<!--fig:(?P<name>[\w.\-]+)-->")
NUMBER = re.compile(r"(?<![\w.^])[-+]?\d[\d,]*(?:\.\d+)?")
FULL_TABLE = "<!--figs:table-->"
EXEMPT_HEADERS = ("paper", "target")      # cited figures and goals, not our measurements
PAGES = ("README.md", "experiments/**/README.md", "benchmarks/README.md", "docs/*.md")


class Quote(NamedTuple):
    page: str
    line: int
    text: str          # the number as printed
    name: str


def quotes(page: str, text: str) -> list[Quote]:
    return [Quote(page, text.count("\n", 0, m.start()) + 1, m["num"], m["name"])
            for m in MARKED.finditer(text)]


def unmarked_in_tables(page: str, text: str) -> list[str]:
    """Problems: numbers in the body of a fully-marked table that carry no marker."""
    problems, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != FULL_TABLE:
            continue
        header = [c.strip() for c in lines[i + 1].strip().strip("|").split("|")]
        exempt = {0} | {k for k, h in enumerate(header)
                        if any(w in h.lower() for w in EXEMPT_HEADERS)}
        for j in range(i + 3, len(lines)):
            if not lines[j].lstrip().startswith("|"):
                break
            cells = lines[j].strip().strip("|").split("|")
            for k, cell in enumerate(cells):
                rest = MARKED.sub("", re.sub(r"`[^`]*`", "", cell))
                if k not in exempt and NUMBER.search(rest):
                    problems.append(f"{page}:{j + 1}: unmarked number "
                                    f"'{NUMBER.search(rest)[0]}' in a fully-marked table")
    return problems


def printed_decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def check_quote(q: Quote, figures: dict[str, dict]) -> str | None:
    """None when the quoted number agrees with the results entry: within its noise plus half
    a unit of the printed last digit."""
    where = f"{q.page}:{q.line}: {q.text} ({q.name})"
    entry = figures.get(q.name)
    if entry is None:
        return f"{where}: not in the results file"
    if entry.get("quick"):
        return f"{where}: the results entry is a --quick one"
    quoted = float(q.text.replace(",", ""))
    allowed = float(entry["noise"]) + 0.5 * 10 ** -printed_decimals(q.text)
    if abs(quoted - float(entry["value"])) > allowed + 1e-12:
        return f"{where}: results file says {entry['value']:.6g} (noise {entry['noise']:.3g})"
    return None


def printed(value: float, like: str) -> str:
    """value printed as ``like`` is: same decimals, thousands separators if it has them."""
    d = printed_decimals(like)
    return f"{value:,.{d}f}" if "," in like else f"{value:.{d}f}"


def update_text(page: str, text: str, figures: dict[str, dict]) -> tuple[str, list[str]]:
    """The page with every marked figure that has a full (not quick) entry printed from it;
    and the changes, 'page:line: name old -> new'."""
    changes = []

    def new(m: re.Match) -> str:
        entry = figures.get(m["name"])
        if entry is None or entry.get("quick"):
            return m[0]
        text_new = printed(float(entry["value"]), m["num"])
        if text_new != m["num"]:
            line = text.count("\n", 0, m.start()) + 1
            changes.append(f"{page}:{line}: {m['name']} {m['num']} -> {text_new}")
        return f"{text_new}<!--fig:{m['name']}-->"
    return MARKED.sub(new, text), changes


def update_pages(figures: dict[str, dict], root: Path = ROOT) -> list[str]:
    changes = []
    for path in page_files(root):
        page = str(path.relative_to(root))
        text, changed = update_text(page, path.read_text(), figures)
        if changed:
            path.write_text(text)
            changes += changed
    return changes


def page_files(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in PAGES for p in root.glob(pattern)})


def check_pages(figures: dict[str, dict], root: Path = ROOT) -> list[str]:
    problems = []
    for path in page_files(root):
        page, text = str(path.relative_to(root)), path.read_text()
        problems += [p for q in quotes(page, text) if (p := check_quote(q, figures))]
        problems += unmarked_in_tables(page, text)
    return problems
