"""The ``nested-ae`` command line: one module per command, one progress printer.

Each command module has ``add_parser(subparsers)`` and ``run(args) -> exit status``; library
modules hold no argparse. Errors caused by input (config, data, run directory) print one line
``error: ...`` and exit with status 2; ``--debug`` shows the traceback instead. Commands import
JAX lazily, so ``--help`` and config errors are fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import NestedAEError

COMMANDS = ("demo", "train", "predict", "sweep", "compare", "explain", "design", "keys")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nested-ae", description="Nested supervised autoencoders (NestedAE) in JAX: "
        "multi-scale materials property prediction.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f".{name}", __name__)
        module.add_parser(sub).set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NestedAEError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
