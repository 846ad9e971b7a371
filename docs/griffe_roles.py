"""A griffe extension for the API reference: the docstrings are written for ``help()`` and use
reST roles (:class:`TrainedChain`, :func:`~nested_ae_jax.design.design`) and ``::`` before an
indented example; markdown would print the roles as text. A role becomes inline code of the
name it refers to (``~`` and leading dots dropped), and ``::`` ending a paragraph becomes
``:`` (the indented block after it is a code block in markdown too). Docstrings only: no
behaviour of the package depends on this file (loaded by mkdocs.yml).

The config records document each field in the call that declares it,
``latent_size: int = _key("latent dimension", 8, gt=0)`` (the table of ``nested-ae keys``);
such a field gets that text as its docstring and its default as its value."""

from __future__ import annotations

import ast
import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|obj|data|exc|const):`([^`]+)`")
LITERAL = re.compile(r"(?<=\S)::[ \t]*$", re.M)


def _name(match: re.Match) -> str:
    target = re.sub(r"\s+", "", match.group(1))
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target.lstrip('.')}`"


def markdown_docstring(text: str) -> str:
    """``text`` with reST roles as inline code and paragraph-ending ``::`` as ``:``."""
    return LITERAL.sub(":", ROLE.sub(_name, text))


class RolesToCode(griffe.Extension):
    """Rewrite every docstring griffe reads (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)

    def on_attribute_instance(self, *, node: ast.AST | griffe.ObjectNode, attr: griffe.Attribute,
                              **kwargs) -> None:
        value = getattr(node, "value", None)
        func = getattr(value, "func", None)
        name = getattr(func, "id", getattr(func, "attr", ""))
        args = getattr(value, "args", [])
        if not (isinstance(value, ast.Call) and name.lstrip("_") == "key" and args):
            return
        if isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            attr.docstring = griffe.Docstring(markdown_docstring(args[0].value), parent=attr)
        attr.value = ast.unparse(args[1]) if len(args) > 1 else None
