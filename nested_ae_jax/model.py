"""One scale's supervised autoencoder as pure functions over explicit parameter pytrees.

Parameters are plain nested dicts of arrays::

    {"encoder": [{"w": (in, out), "b": (out,)}, ...],
     "heads":   {HEAD: [{"w": ..., "b": ...}, ...], ...}}

Fixed statistics (the standardisation of numeric and latent input groups, fitted on training
rows) live beside the parameters in a ``stats`` pytree ``{GROUP: {"mean": (d,), "scale": (d,)}}``
so that ``apply`` maps *raw* inputs to outputs and gradients reach the raw descriptors.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from .config import ScaleSpec

if TYPE_CHECKING:
    from .data import ScaleData

Params = dict[str, Any]
Stats = dict[str, dict[str, jax.Array]]

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "gelu": jax.nn.gelu,
    "elu": jax.nn.elu,
    "leaky_relu": jax.nn.leaky_relu,
}


@dataclass(frozen=True)
class ScaleDims:
    """Array widths a scale's model needs, read off its data: input widths in encoder order
    (categorical groups: number of classes) and output width of every head."""

    inputs: tuple[tuple[str, int], ...]
    heads: tuple[tuple[str, int], ...]

    @property
    def input_width(self) -> int:
        return sum(w for _, w in self.inputs)

    def width(self, group: str) -> int:
        return dict(self.inputs)[group]


def scale_dims(spec: ScaleSpec, data: "ScaleData") -> ScaleDims:
    """Input and head widths read off a scale's encoded data (categorical groups: number of
    classes; latent groups: the last axis)."""
    widths = {}
    for g in spec.inputs:
        widths[g.name] = len(data.categories.groups[g.name]) if g.kind == "categorical" \
            else data.inputs[g.name].shape[-1]
    heads = []
    for h in spec.heads:
        if h.kind == "regression":
            heads.append((h.name, len(h.target)))
        elif h.input:  # reconstruction, or a categorical head on an input group
            heads.append((h.name, widths[h.input]))
        else:
            heads.append((h.name, len(data.categories.heads[h.name])))
    return ScaleDims(tuple((g.name, widths[g.name]) for g in spec.inputs), tuple(heads))


class ScaleOutputs(NamedTuple):
    """What a scale's model computes for N rows (a pytree: extra leading axes for several
    models). latent: (N, L); features: {GROUP: (N, d)} the standardised / one-hot encoder
    inputs (the reconstruction targets); heads: {HEAD: (N, out)} (categorical: logits)."""

    latent: jax.Array
    features: dict[str, jax.Array]
    heads: dict[str, jax.Array]


def init_dense(key: jax.Array, fan_in: int, fan_out: int, scheme: str, gain: float) -> dict:
    """Xavier (Glorot) weights, zero biases: normal sigma = gain*sqrt(2/(in+out)), uniform
    bound = gain*sqrt(6/(in+out)) (PyTorch's xavier_normal_/xavier_uniform_)."""
    if scheme == "xavier_normal":
        w = gain * jnp.sqrt(2.0 / (fan_in + fan_out)) * jax.random.normal(key, (fan_in, fan_out))
    else:
        bound = gain * jnp.sqrt(6.0 / (fan_in + fan_out))
        w = jax.random.uniform(key, (fan_in, fan_out), minval=-bound, maxval=bound)
    return {"w": w, "b": jnp.zeros((fan_out,))}


def init_mlp(key: jax.Array, sizes: list[int], scheme: str, gain: float) -> list[dict]:
    """Dense layers for widths ``sizes = [in, hidden..., out]``."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [init_dense(k, a, b, scheme, gain) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


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
    """
    seed = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
    idx = jnp.arange(math.prod(shape), dtype=jnp.uint32).reshape(shape)
    x = _mix32(idx ^ _mix32(seed[0] + jnp.uint32(stream) * jnp.uint32(0x9E3779B9)))
    x = _mix32(x ^ seed[-1])
    return (x >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def step_key(key: jax.Array, step: jax.Array) -> jax.Array:
    """The key of step ``step`` under ``key`` (e.g. a mini-batch within an epoch): the key's
    bits with the counter mixed in by integer arithmetic, no generator call. Keys of
    different steps give independent :func:`hash_uniform` noise (and valid keys for any
    other use)."""
    bits = jax.random.key_data(key)
    mixed = bits.at[..., 0].set(bits[..., 0] ^ _mix32(jnp.asarray(step, jnp.uint32)
                                                      * jnp.uint32(0x9E3779B9)
                                                      + jnp.uint32(0x632BE5AB)))
    return jax.random.wrap_key_data(mixed, impl=jax.random.key_impl(key))


def apply_mlp(layers: list[dict], x: jax.Array, activation: str, output_activation: str,
              dropout: jax.Array | float = 0.0, rng: jax.Array | None = None,
              stream: int = 0) -> jax.Array:
    """Dense layers; ``activation`` and (inverted) dropout after every hidden layer.

    x: (..., in) -> (..., out). rng: a key for this call's dropout masks (layer i uses hash
    stream ``stream + i``); no dropout when None (evaluation) or when the rate is a Python 0.
    """
    for i, layer in enumerate(layers):
        x = x @ layer["w"] + layer["b"]
        if i < len(layers) - 1:
            x = _ACTIVATIONS[activation](x)
            if rng is not None and not (isinstance(dropout, (int, float)) and dropout == 0):
                keep = hash_uniform(rng, x.shape, stream + i) >= dropout
                x = jnp.where(keep, x / (1.0 - dropout), 0.0)
    return _ACTIVATIONS[output_activation](x)


def standardise_inputs(spec: ScaleSpec, dims: ScaleDims, stats: Stats,
                       inputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Raw inputs -> encoder features per group: numeric/latent (N, d) standardised with
    ``stats``; categorical (N,) integer codes -> (N, n_classes) one-hot."""
    feats = {}
    for name, width in dims.inputs:
        x = inputs[name]
        if spec.group(name).kind == "categorical":
            feats[name] = jax.nn.one_hot(x, width)
        else:
            feats[name] = (x - stats[name]["mean"]) / stats[name]["scale"]
    return feats


def apply_heads(spec: ScaleSpec, params: Params, latent: jax.Array,
                dropout: dict | None = None, rng: jax.Array | None = None) -> dict:
    """Every head of a scale on a given latent (N, L) -> {HEAD: (N, out)}; categorical heads
    give logits. Used by ``apply`` and to decode points of the latent space. Head j's dropout
    layers use hash streams 64 (j + 1) + i."""
    out = {}
    for j, h in enumerate(spec.heads):
        act = "linear" if h.kind == "categorical" else h.output_activation
        out[h.name] = apply_mlp(params["heads"][h.name], latent, h.activation, act,
                                (dropout or {}).get(h.name, 0.0), rng, 64 * (j + 1))
    return out


class ScaleModel(NamedTuple):
    """A scale's model as a pair of pure functions (like optax's GradientTransformation).

    init(key) -> params.
    apply(params, stats, inputs, *, rng=None, dropout=None, latent_mask=None) ->
        :class:`ScaleOutputs`. Dropout is applied only when ``rng`` (a key, one per training
        step) is given; ``dropout`` overrides the config's rates: {"encoder": rate,
        "heads": {HEAD: rate}} (arrays allowed, for sweeps).
        ``latent_mask`` (L,) 0/1 multiplies the latent: a masked unit is 0 on every row, so it
        carries nothing and its encoder weights get no gradient (a smaller latent).
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[..., dict]
    spec: ScaleSpec
    dims: ScaleDims


def default_dropout(spec: ScaleSpec) -> dict:
    return {"encoder": spec.encoder.dropout, "heads": {h.name: h.dropout for h in spec.heads}}


@functools.cache
def scale_model(spec: ScaleSpec, dims: ScaleDims) -> ScaleModel:
    """Build the pure init/apply pair of one scale from its spec and data widths.

    Cached: equal (spec, dims) give the very same functions, so compiled programs keyed on
    the model are reused across calls.
    """
    enc = spec.encoder
    head_width = dict(dims.heads)

    def init(key: jax.Array) -> Params:
        k_enc, k_heads = jax.random.split(key)
        head_keys = jax.random.split(k_heads, len(spec.heads))
        return {
            "encoder": init_mlp(k_enc, [dims.input_width, *enc.hidden, enc.latent_size],
                                enc.init, enc.init_gain),
            "heads": {h.name: init_mlp(k, [enc.latent_size, *h.hidden, head_width[h.name]],
                                       h.init, h.init_gain)
                      for h, k in zip(spec.heads, head_keys)},
        }

    def apply(params: Params, stats: Stats, inputs: dict[str, jax.Array], *,
              rng: jax.Array | None = None, dropout: dict | None = None,
              latent_mask: jax.Array | None = None) -> ScaleOutputs:
        rates = default_dropout(spec) if dropout is None else dropout
        feats = standardise_inputs(spec, dims, stats, inputs)
        x = jnp.concatenate([feats[name] for name, _ in dims.inputs], axis=-1)
        latent = apply_mlp(params["encoder"], x, enc.activation, enc.latent_activation,
                           rates["encoder"], rng, 0)
        if latent_mask is not None:
            latent = latent * latent_mask
        heads = apply_heads(spec, params, latent, rates["heads"], rng)
        return ScaleOutputs(latent, feats, heads)

    return ScaleModel(init, apply, spec, dims)
