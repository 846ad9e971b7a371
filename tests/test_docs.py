"""The documentation site's structure, without building it (CI builds it with `mkdocs build
--strict` and runs its examples with docs/run_examples.py): the nav lists every page, every
relative link and anchor of docs/ and README.md resolves, and the API reference can see the
package's public names. Pure text and ast: no JAX, no mkdocs."""

from __future__ import annotations

import ast
import re
import unicodedata
from pathlib import Path

from conftest import run_examples_module

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """``text`` without fenced blocks and inline code (links and headings there are not)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """Python-Markdown's toc id of a heading (mkdocs' default)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*$", text, re.M)}


def _nav_pages() -> list[str]:
    """The pages mkdocs.yml's nav names (``- Title: page.md`` or ``- page.md``)."""
    text = (REPO / "mkdocs.yml").read_text()
    nav = text.split("\nnav:\n", 1)[1]
    nav = nav[:re.search(r"^\S", nav, re.M).start()]
    return re.findall(r"^\s*-\s+(?:[^:\n]+:\s+)?(\S+\.md)\s*$", nav, re.M)


def test_nav_lists_every_page_once():
    nav = _nav_pages()
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(nav) == pages, "mkdocs.yml nav and the pages under docs/ differ"
    assert "run-directories.md" in nav and "api/trained-chain.md" in nav


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(REPO)}: {target}"
            if not dest.exists():
                broken.append(f"{where} (no such file)")
            elif page.is_relative_to(DOCS) and not dest.is_relative_to(DOCS):
                broken.append(f"{where} (leaves docs/: the site cannot link it)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{where} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


def _package_init(package: str = "") -> ast.Module:
    return ast.parse((REPO / "nested_ae_jax" / package / "__init__.py").read_text())


def test_lazy_names_are_visible_to_the_api_reference():
    """mkdocstrings reads the source without importing it, so the names a package's
    ``__getattr__`` loads lazily (``_LAZY``) are also imported under ``if TYPE_CHECKING:``."""
    for package in ("", "bo"):
        tree = _package_init(package)
        lazy = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                    and any(getattr(t, "id", "") == "_LAZY" for t in n.targets))
        block = next(n for n in tree.body if isinstance(n, ast.If)
                     and getattr(n.test, "id", "") == "TYPE_CHECKING")
        seen = {a.name: imp.module for imp in block.body if isinstance(imp, ast.ImportFrom)
                for a in imp.names}
        assert seen == lazy, f"nested_ae_jax/{package}"


def test_api_reference_covers_the_public_names():
    tree = _package_init()
    public = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                  and any(getattr(t, "id", "") == "__all__" for t in n.targets))
    directives = {m.group(1) for page in (DOCS / "api").glob("*.md")
                  for m in re.finditer(r"^::: (\S+)", page.read_text(), re.M)}
    missing = [n for n in public if f"nested_ae_jax.{n}" not in directives]
    assert not missing, f"names of nested_ae_jax.__all__ not in docs/api/: {missing}"


def test_examples_checker_finds_the_blocks_and_their_skips():
    mod = run_examples_module()
    found = [b for page in mod.pages() for b in mod.blocks(page)]
    assert any(b.page.name == "run-directories.md" and b.skip is None for b in found)
    skipped = [b for b in found if b.skip is not None]
    # the README's example is run by the suite (test_chain_api), not twice
    assert [b.page.name for b in skipped] == ["README.md"]
    assert all(b.skip for b in skipped), "a skip-example marker must give its reason"
    readme = next(b for b in skipped)
    assert "test_the_readme_example_runs" in readme.skip
    lines = (REPO / "README.md").read_text().splitlines()
    assert lines[readme.line - 3].startswith("<!-- skip-example:")
    assert lines[readme.line - 2] == "```python"
