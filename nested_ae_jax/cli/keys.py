"""``nested-ae keys``: every config key with its type, default and meaning."""

from __future__ import annotations


def add_parser(sub):
    return sub.add_parser("keys", help="print every config key (type, default, meaning)")


def run(args) -> int:
    from ..config import key_reference

    print(key_reference())
    return 0
