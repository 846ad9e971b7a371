"""The ``nested-ae`` command line: one module per command, one progress printer.

Each command module has ``add_parser(subparsers)`` and ``run(args) -> exit status``; library
modules hold no argparse. Errors caused by input (config, data, run directory) print one line
``error: ...`` and exit with status 2; ``--debug`` shows the traceback instead. Commands import
JAX lazily, so ``--help`` and config errors are fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

from ..errors import NestedAEError

COMMANDS = ("demo", "train", "predict", "sweep", "compare", "explain", "design", "suggest",
            "campaign", "keys", "tune")


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


MAX_CPU_DEVICES = 8


def use_every_core() -> None:
    """One JAX CPU device per available core (at most 8), set before JAX starts, so a batch
    of models (folds x seeds x settings) is sharded over every core: XLA runs the small
    batched matrix products of one device on about one core. ``NESTED_AE_CPU_DEVICES=N``
    chooses N (1: the single device of the Python API, bit for bit); an explicit
    ``JAX_NUM_CPU_DEVICES`` or XLA device-count flag is left alone. Results with another
    device count differ in the last bits (each device's program is compiled for its share)."""
    if "JAX_NUM_CPU_DEVICES" in os.environ or \
            "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    n = os.environ.get("NESTED_AE_CPU_DEVICES") or str(min(cores, MAX_CPU_DEVICES))
    os.environ["JAX_NUM_CPU_DEVICES"] = n


def compilation_cache_dir() -> str | None:
    """The folder of the persistent compilation cache of the command line: an explicit
    ``JAX_COMPILATION_CACHE_DIR``; else ``NESTED_AE_CACHE`` (a folder, or ``off`` for none);
    else ``$XDG_CACHE_HOME/nested_ae_jax/jax`` (default ``~/.cache/nested_ae_jax/jax``)."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    chosen = os.environ.get("NESTED_AE_CACHE", "").strip()
    if chosen.lower() in ("off", "0", "false", "no", "none"):
        return None
    if chosen:
        return os.path.expanduser(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nested_ae_jax", "jax")


def use_compilation_cache() -> None:
    """Keep compiled programs between runs (:func:`compilation_cache_dir`), set before the
    first compile: a command run again skips most of its compilation. Programs that compiled
    in under 0.2 s are not kept (``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` chooses)."""
    folder = compilation_cache_dir()
    if folder is None:
        return
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    if "jax" in sys.modules:  # already started (an in-process call): its config, once
        import jax

        if not jax.config.jax_compilation_cache_dir:
            jax.config.update("jax_compilation_cache_dir", folder)
            jax.config.update("jax_persistent_cache_min_compile_time_secs",
                              float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def main(argv: list[str] | None = None) -> int:
    use_every_core()
    use_compilation_cache()
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
    finally:
        if argv is None:  # the command line: the process ends next. Its exit would walk
            gc.freeze()   # JAX's object graph for cycles (~0.9 s a train); the OS frees it


if __name__ == "__main__":
    sys.exit(main())
