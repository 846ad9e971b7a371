"""Key documentation: the Markdown table of every config key (type, default, meaning) that
docs/configuration.md holds and ``nested-ae keys`` prints."""

from __future__ import annotations

import dataclasses
import typing

from .schema import (ChainSpec, CVSpec, EncoderSpec, HeadSpec, InputGroup, ScaleSpec,
                     TrainingSpec)


def key_reference() -> str:
    """Markdown table of every config key (type, default, meaning), for docs/configuration.md."""
    rows = ["| table | key | type | default | meaning |", "|---|---|---|---|---|"]
    tables = [("[chain]", ChainSpec), ("[scales.S]", ScaleSpec),
              ("[scales.S.inputs.G]", InputGroup), ("[scales.S.encoder]", EncoderSpec),
              ("[scales.S.heads.H]", HeadSpec), ("[scales.S.training]", TrainingSpec),
              ("[scales.S.cv]", CVSpec)]
    for table, cls in tables:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in ("name", "source") or dataclasses.is_dataclass(f.default) or \
                    f.name in ("inputs", "heads"):
                continue
            tp = hints[f.name]
            tname = ("table" if f.name in ("rename", "finetune_weights", "reference",
                                           "options") else
                     f"list of {typing.get_args(tp)[0].__name__}"
                     if typing.get_origin(tp) is tuple else tp.__name__)
            default = "required" if f.default is dataclasses.MISSING else repr(f.default)
            if isinstance(f.default, tuple):
                default = "{}" if tname == "table" else "[]"
            doc = f.metadata["doc"]
            if "choices" in f.metadata:
                doc += " (one of: " + ", ".join(c for c in f.metadata["choices"] if c) + ")"
            rows.append(f"| `{table}` | `{f.name}` | {tname} | `{default}` | {doc} |")
    return "\n".join(rows)
