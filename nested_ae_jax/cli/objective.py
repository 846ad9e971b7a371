"""The objective flags every command that optimises a head shares (``design``, ``suggest``,
``campaign``): ``--maximize SCALE.HEAD``, ``--minimize SCALE.HEAD``, ``--target
SCALE.HEAD=VALUE`` and ``--objective KIND:SCALE.HEAD[=VALUE]``, in the language of
:mod:`nested_ae_jax.objectives`."""

from __future__ import annotations

FLAGS = {"maximize": "max", "minimize": "min", "target": "target", "objective": None}


def add_objective_options(p, *, several: bool) -> None:
    """The four flags; ``several``: repeatable, summed with weights (design); else exactly one
    of them, once."""
    w = "[W*]" if several else ""
    group = p if several else p.add_mutually_exclusive_group(required=True)
    kw = {"action": "append", "default": []} if several else {}
    more = " (repeatable: a weighted sum)" if several else ""
    group.add_argument("--maximize", metavar=f"{w}SCALE.HEAD", help=f"head to maximise{more}",
                       **kw)
    group.add_argument("--minimize", metavar=f"{w}SCALE.HEAD", help=f"head to minimise{more}",
                       **kw)
    group.add_argument("--target", metavar=f"{w}SCALE.HEAD=VALUE",
                       help=f"head to bring to VALUE{more}", **kw)
    group.add_argument("--objective", metavar="KIND:SCALE.HEAD[=VALUE]",
                       help="the same in one flag: max:SCALE.HEAD, min:SCALE.HEAD or "
                       f"target:SCALE.HEAD=VALUE{more}", **kw)


def objectives_of(args) -> list:
    """The parsed objectives of the flags, in the order maximize, minimize, target,
    objective (:class:`~nested_ae_jax.objectives.Objective`)."""
    from ..objectives import parse_objective

    out = []
    for flag, kind in FLAGS.items():
        given = getattr(args, flag)
        for text in ([given] if isinstance(given, str) else given or []):
            out.append(parse_objective(text, kind))
    return out
