"""The networks inside a scale: the built-in dense network and user Flax modules, each as a
pure pair.

A *component* is one network of a scale (its encoder, or one head), ``(N, in) -> (N, out)``:

    init(key) -> variables                     {"params": {...}} (flax's variables)
    apply(variables, x, rng=None, dropout=0.0) -> (N, out)

Dropout is on only when ``rng`` (this step's key) is given. Three kinds of component:

- :class:`DenseNet`, the built-in ``flax.linen`` network (``nn.Dense`` layers: parameters
  ``Dense_i/{kernel, bias}``). Its dropout rate is a *call argument* (an array in a sweep: one
  compiled program for many rates) and its noise comes from :func:`hash_uniform` of the
  ``"dropout"`` rng (counter-based, fused into the step).
- a user ``flax.linen`` module from ``factory(out_features=WIDTH, **options)``, called as
  ``module.apply(variables, x, train, rngs={"dropout": key})``.
- a user ``flax.nnx`` module from ``factory(in_features=IN, out_features=WIDTH,
  rngs=nnx.Rngs(params=key, dropout=key), **options)`` (a factory taking ``rngs``), kept as
  ``nnx.split``'s graph and its ``nnx.Param`` state as a plain dict; ``apply`` merges them and
  reseeds the ``"dropout"`` stream with the step's key.

A user module is referenced as ``"file.py:factory"`` (a self-contained file) or
``"package.module:factory"`` (importable); :func:`user_component` loads it and checks its
output shape once with ``jax.eval_shape``. Errors are one-line ``ConfigError``s.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from .config import split_module_reference
from .errors import ConfigError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "gelu": jax.nn.gelu,
    "elu": jax.nn.elu,
    "leaky_relu": jax.nn.leaky_relu,
}


def _mix32(x: jax.Array) -> jax.Array:
    """lowbias32: a bijective integer hash of uint32 with good avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def hash_uniform(key: jax.Array, shape: tuple[int, ...], stream: int = 0) -> jax.Array:
    """U[0, 1) of ``shape`` from a counter-based hash of each element's index, the bits of
    ``key`` and a ``stream`` id: no random-number state and no generator call, so XLA fuses
    it into the step (the dropout noise of the built-in network; one key per step and model).
    The key and stream are mixed once into a scalar offset; one 32-bit hash of a Weyl sequence
    gives two 16-bit uniforms (resolution 2^-16: a dropout rate acts as its nearest multiple
    of 1/65536), half the integer work of one hash per element.
    """
    seed = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
    offset = _mix32(_mix32(seed[0] + jnp.uint32(stream) * jnp.uint32(0x9E3779B9)) ^ seed[-1])
    n = math.prod(shape)
    x = _mix32(jnp.arange((n + 1) // 2, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9) + offset)
    bits = jnp.concatenate([x >> 16, x & jnp.uint32(0xFFFF)])[:n]
    return (bits.astype(jnp.float32) * (1.0 / 65536)).reshape(shape)


def step_key(key: jax.Array, step: jax.Array) -> jax.Array:
    """The key of step ``step`` under ``key`` (e.g. a mini-batch within an epoch): the key's
    bits with the counter mixed in by integer arithmetic, no generator call. Keys of
    different steps give independent :func:`hash_uniform` noise (and valid keys for any
    other use, e.g. a user module's ``nn.Dropout``)."""
    bits = jax.random.key_data(key)
    mixed = bits.at[..., 0].set(bits[..., 0] ^ _mix32(jnp.asarray(step, jnp.uint32)
                                                      * jnp.uint32(0x9E3779B9)
                                                      + jnp.uint32(0x632BE5AB)))
    return jax.random.wrap_key_data(mixed, impl=jax.random.key_impl(key))


def xavier(scheme: str, gain: float) -> Callable:
    """Xavier (Glorot) kernel init: normal sigma = gain*sqrt(2/(in+out)), uniform bound =
    gain*sqrt(6/(in+out)) (PyTorch's xavier_normal_/xavier_uniform_)."""
    dist = "normal" if scheme == "xavier_normal" else "uniform"  # "normal": not truncated
    return nn.initializers.variance_scaling(gain**2, "fan_avg", dist)


def dropout_off(rate: Any) -> bool:
    """A rate that is a Python 0 costs nothing (no noise drawn)."""
    return isinstance(rate, (int, float)) and rate == 0


class DenseNet(nn.Module):
    """The built-in network: ``nn.Dense`` layers of widths ``features`` (hidden..., out),
    ``activation`` and inverted dropout after every hidden layer, ``output_activation`` last.

    ``__call__(x (N, in), train, dropout=0.0, key=None) -> (N, features[-1])``; ``dropout``
    may be an array (a runtime input). Layer i's noise is :func:`hash_uniform` stream i of
    ``key`` (the package passes this step's key directly, no generator call) or, without one,
    of the ``"dropout"`` rng.
    """

    features: tuple[int, ...]
    activation: str = "tanh"
    output_activation: str = "linear"
    weight_init: str = "xavier_normal"
    gain: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, dropout: Any = 0.0,
                 key: jax.Array | None = None) -> jax.Array:
        if not train or dropout_off(dropout):
            key = None
        elif key is None:
            key = self.make_rng("dropout")
        for i, width in enumerate(self.features):
            x = nn.Dense(width, kernel_init=xavier(self.weight_init, self.gain))(x)
            if i < len(self.features) - 1:
                x = ACTIVATIONS[self.activation](x)
                if key is not None:
                    keep = hash_uniform(key, x.shape, i) >= dropout
                    x = jnp.where(keep, x / (1.0 - dropout), 0.0)
        return ACTIVATIONS[self.output_activation](x)


class Component(NamedTuple):
    """One network of a scale as a pure pair (see the module docstring)."""

    init: Callable[[jax.Array], dict]
    apply: Callable[..., jax.Array]


def linen_component(module: nn.Module, in_width: int, rated: bool = False) -> Component:
    """A ``flax.linen`` module as a Component; ``rated``: it takes the dropout rate as a call
    argument (the built-in :class:`DenseNet`)."""

    def init(key: jax.Array) -> dict:
        k_params, k_drop = jax.random.split(key)
        return dict(module.init({"params": k_params, "dropout": k_drop},
                                jnp.zeros((1, in_width), jnp.float32), False))

    def apply(variables: dict, x: jax.Array, rng: jax.Array | None = None,
              dropout: Any = 0.0) -> jax.Array:
        if rated:  # the built-in network takes its rate and key as arguments (fast path)
            return module.apply(variables, x, rng is not None, dropout=dropout, key=rng)
        rngs = None if rng is None else {"dropout": rng}
        return module.apply(variables, x, rng is not None, rngs=rngs)

    return Component(init, apply)


def nnx_component(factory: Callable, options: dict, in_width: int, out_width: int
                  ) -> Component:
    """A ``flax.nnx`` module built by ``factory(in_features=, out_features=, rngs=,
    **options)`` as a Component: variables {"params": the nnx.Param state as a plain dict}."""
    from flax import nnx

    def build(key: jax.Array):
        k_params, k_drop = jax.random.split(key)
        return factory(in_features=in_width, out_features=out_width,
                       rngs=nnx.Rngs(params=k_params, dropout=k_drop), **options)

    graph, params_template, rest = nnx.split(build(jax.random.key(0)), nnx.Param, ...)

    def init(key: jax.Array) -> dict:
        return {"params": nnx.to_pure_dict(nnx.state(build(key), nnx.Param))}

    def apply(variables: dict, x: jax.Array, rng: jax.Array | None = None,
              dropout: Any = 0.0) -> jax.Array:
        params = jax.tree.map(lambda a: a, params_template)  # fresh Variables in this trace
        nnx.replace_by_pure_dict(params, variables["params"])
        module = nnx.merge(graph, params, jax.tree.map(lambda a: a, rest))
        if rng is not None:
            nnx.reseed(module, dropout=rng)
        return module(x, rng is not None)

    return Component(init, apply)


# ----------------------------------------------------------------------------------------------
# User modules: "file.py:factory" or "package.module:factory"


def _load_file(path: Path, label: str) -> Any:
    """Import a self-contained Python file (once per path and content)."""
    try:
        source = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{label}: cannot read {path}: {err.strerror or err}") from None
    name = f"nested_ae_user_modules._{hashlib.sha1(bytes(path) + source).hexdigest()[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses (linen modules) look their module up
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ConfigError(f"{label}: importing {path} failed: {_first_line(err)}") from None
    return module


def load_factory(ref: str, label: str = "module") -> Callable:
    """The factory a module reference names (file paths must be absolute by now: the config
    resolves them against its folder)."""
    where, name = split_module_reference(ref, label)
    label = f"{label} = {ref!r}"
    if where.endswith(".py"):
        module = _load_file(Path(where), label)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as err:
            raise ConfigError(f"{label}: cannot import {where}: {_first_line(err)}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ConfigError(f"{label}: {where} has no function or class {name!r}")
    return factory


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300]}" if text else type(err).__name__


def takes_rngs(factory: Callable) -> bool:
    """An nnx factory takes ``rngs`` (a linen factory does not)."""
    try:
        return "rngs" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def user_component(ref: str, options: dict, in_width: int, out_width: int, where: str
                   ) -> Component:
    """The Component of a user module (see the module docstring), checked once with
    ``jax.eval_shape``: it initialises and maps (2, in_width) to (2, out_width) with dropout
    off and on. ``where``: the config key, for messages."""
    factory = load_factory(ref, where)
    label = f"{where} = {ref!r}"
    if takes_rngs(factory):
        from flax import nnx
        try:
            probe = factory(in_features=in_width, out_features=out_width, rngs=nnx.Rngs(0),
                            **options)
        except Exception as err:
            raise ConfigError(f"{label}: the factory failed: {_first_line(err)}") from None
        if not isinstance(probe, nnx.Module):
            raise ConfigError(f"{label}: a factory taking rngs must return a flax.nnx.Module, "
                              f"got {type(probe).__name__}")
        other = [type(v).__name__ for _, v in nnx.to_flat_state(nnx.state(probe, nnx.Not(
            nnx.Param))) if not isinstance(v, (nnx.RngKey, nnx.RngCount))]
        if other:
            raise ConfigError(f"{label}: only nnx.Param and rng state are supported (the "
                              f"module holds {other[0]}; e.g. use LayerNorm, not BatchNorm)")
        component = nnx_component(factory, options, in_width, out_width)
    else:
        try:
            module = factory(out_features=out_width, **options)
        except Exception as err:
            raise ConfigError(f"{label}: the factory failed: {_first_line(err)}") from None
        if not isinstance(module, nn.Module):
            raise ConfigError(f"{label}: the factory must return a flax.linen.Module (or take "
                              f"rngs and return a flax.nnx.Module), got {type(module).__name__}")
        component = linen_component(module, in_width)
    check_component(component, in_width, out_width, label)
    return component


def check_component(component: Component, in_width: int, out_width: int, label: str) -> None:
    """Shapes only (``jax.eval_shape``): init gives {"params": ...} alone, and (2, in_width)
    maps to (2, out_width), with and without dropout."""
    key = jax.random.key(0)
    try:
        variables = jax.eval_shape(component.init, key)
    except Exception as err:
        raise ConfigError(f"{label}: init failed on inputs of width {in_width}: "
                          f"{_first_line(err)}") from None
    if set(variables) != {"params"}:
        raise ConfigError(f"{label}: only the 'params' collection is trained; the module also "
                          f"has {sorted(set(variables) - {'params'})} (e.g. use LayerNorm, "
                          "not BatchNorm)")
    x = jax.ShapeDtypeStruct((2, in_width), jnp.float32)
    for rng in (None, key):
        try:
            y = jax.eval_shape(lambda v, x_: component.apply(v, x_, rng), variables, x)
        except Exception as err:
            raise ConfigError(f"{label}: calling it on (2, {in_width}) failed"
                              f"{' with dropout' if rng is not None else ''}: "
                              f"{_first_line(err)}") from None
        shape = getattr(y, "shape", None)
        if shape != (2, out_width):
            raise ConfigError(f"{label}: maps (2, {in_width}) to {shape}, expected "
                              f"(2, {out_width}) (out_features = {out_width})")


# ----------------------------------------------------------------------------------------------
# A scale's components from its config


def encoder_component(enc: Any, in_width: int, where: str) -> Component:
    """The encoder of an EncoderSpec: (N, in_width) -> (N, latent_size)."""
    if enc.module:
        return user_component(enc.module, dict(enc.options), in_width, enc.latent_size, where)
    return linen_component(DenseNet((*enc.hidden, enc.latent_size), enc.activation,
                                    enc.latent_activation, enc.init, enc.init_gain),
                           in_width, rated=True)


def head_component(head: Any, latent_size: int, out_width: int, where: str) -> Component:
    """A head of a HeadSpec: (N, latent_size) -> (N, out_width) (categorical: logits)."""
    if head.module:
        return user_component(head.module, dict(head.options), latent_size, out_width, where)
    out_act = "linear" if head.kind == "categorical" else head.output_activation
    return linen_component(DenseNet((*head.hidden, out_width), head.activation, out_act,
                                    head.init, head.init_gain), latent_size, rated=True)
