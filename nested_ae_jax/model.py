"""One scale's supervised autoencoder as pure functions over explicit parameter pytrees.

A scale is an encoder and one network per head, each a Flax module (the built-in
``modules.DenseNet`` or a user module, see :mod:`modules`). Its parameters are the Flax
variables of each, in one plain dict::

    {"encoder": {"params": {...}},              # the encoder's flax variables
     "heads":   {HEAD: {"params": {...}}, ...}}  # each head's

With the built-in network, ``{...}`` is ``{"Dense_0": {"kernel": (in, out), "bias": (out,)},
"Dense_1": ...}``, one entry per layer; e.g. the paper's AE1 (15 -> 12, a 100-unit gap head)::

    encoder/params/Dense_0/{kernel (15, 12), bias (12,)}
    heads/gap/params/Dense_0/{kernel (12, 100), bias (100,)}, Dense_1/{kernel (100, 1), ...}
    heads/descriptors/params/Dense_0/{kernel (12, 15), bias (15,)}

Fixed statistics (the standardisation of numeric and latent input groups, fitted on training
rows) live beside the parameters in a ``stats`` pytree ``{GROUP: {"mean": (d,), "scale": (d,)}}``
so that ``apply`` maps *raw* inputs to outputs and gradients reach the raw descriptors.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from .config import ScaleSpec
from .modules import encoder_component, head_component, step_key

if TYPE_CHECKING:
    from .data import ScaleData

Params = dict[str, Any]
Stats = dict[str, dict[str, jax.Array]]

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


def group_features(kind: str, x, width: int, stats: dict | None = None, xp=jnp):
    """The one featuriser of an input group (the model's encoder, ``compare``'s baselines and
    ``bo``'s raw GP features all use it): categorical (N,) integer codes -> (N, width)
    one-hot; numeric / latent (N, d) -> standardised with ``stats`` ({"mean", "scale"}), or
    as they are without. ``xp``: jax.numpy (traceable) or numpy."""
    if kind == "categorical":          # the default float (as jax.nn.one_hot)
        codes = xp.asarray(x)
        return (codes[:, None] == xp.arange(width)[None, :]).astype(xp.result_type(float))
    x = xp.asarray(x)
    return x if stats is None else (x - stats["mean"]) / stats["scale"]


def standardise_inputs(spec: ScaleSpec, dims: ScaleDims, stats: Stats,
                       inputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Raw inputs -> encoder features per group (:func:`group_features`): numeric/latent
    (N, d) standardised with ``stats``; categorical (N,) integer codes -> (N, n_classes)
    one-hot."""
    kinds = {name: spec.group(name).kind for name, _ in dims.inputs}
    return {name: group_features(kinds[name], inputs[name], width,
                                 None if kinds[name] == "categorical" else stats[name])
            for name, width in dims.inputs}


class ScaleModel(NamedTuple):
    """A scale's model as a pair of pure functions (like optax's GradientTransformation).

    init(key) -> params (the tree in the module docstring).
    apply(params, stats, inputs, *, rng=None, dropout=None, latent_mask=None) ->
        :class:`ScaleOutputs`. Dropout is applied only when ``rng`` (a key, one per training
        step) is given; ``dropout`` overrides the built-in networks' rates: {"encoder": rate,
        "heads": {HEAD: rate}} (arrays allowed, for sweeps; user modules ignore it).
        ``latent_mask`` (L,) 0/1 multiplies the latent: a masked unit is 0 on every row, so it
        carries nothing and its encoder weights get no gradient (a smaller latent).
    decode(params, latent, *, rng=None, dropout=None) -> {HEAD: (N, out)}: every head on a
        given latent (N, L) (categorical: logits), e.g. to decode points of the latent space.
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[..., ScaleOutputs]
    spec: ScaleSpec
    dims: ScaleDims
    decode: Callable[..., dict]


def default_dropout(spec: ScaleSpec) -> dict:
    return {"encoder": spec.encoder.dropout, "heads": {h.name: h.dropout for h in spec.heads}}


def component_key(rng: jax.Array | None, index: int) -> jax.Array | None:
    """The dropout key of component ``index`` (0: encoder, j + 1: head j) in a step."""
    return None if rng is None else step_key(rng, index)


@functools.cache
def scale_model(spec: ScaleSpec, dims: ScaleDims) -> ScaleModel:
    """Build the pure init/apply pair of one scale from its spec and data widths (user modules
    are loaded and their shapes checked here: a ConfigError names the key).

    Cached: equal (spec, dims) give the very same functions, so compiled programs keyed on
    the model are reused across calls.
    """
    latent_size = spec.encoder.latent_size
    where = f"scales.{spec.name}"
    encoder = encoder_component(spec.encoder, dims.input_width, f"{where}.encoder.module")
    heads = {h.name: head_component(h, latent_size, w, f"{where}.heads.{h.name}.module")
             for h, (_, w) in zip(spec.heads, dims.heads)}

    def init(key: jax.Array) -> Params:
        k_enc, k_heads = jax.random.split(key)
        head_keys = jax.random.split(k_heads, len(spec.heads))
        return {"encoder": encoder.init(k_enc),
                "heads": {h.name: heads[h.name].init(k) for h, k in zip(spec.heads, head_keys)}}

    def decode(params: Params, latent: jax.Array, *, rng: jax.Array | None = None,
               dropout: dict | None = None) -> dict[str, jax.Array]:
        rates = default_dropout(spec)["heads"] if dropout is None else dropout
        return {h.name: heads[h.name].apply(params["heads"][h.name], latent,
                                            component_key(rng, j + 1), rates[h.name])
                for j, h in enumerate(spec.heads)}

    def apply(params: Params, stats: Stats, inputs: dict[str, jax.Array], *,
              rng: jax.Array | None = None, dropout: dict | None = None,
              latent_mask: jax.Array | None = None) -> ScaleOutputs:
        rates = default_dropout(spec) if dropout is None else dropout
        feats = standardise_inputs(spec, dims, stats, inputs)
        x = jnp.concatenate([feats[name] for name, _ in dims.inputs], axis=-1)
        latent = encoder.apply(params["encoder"], x, component_key(rng, 0), rates["encoder"])
        if latent_mask is not None:
            latent = latent * latent_mask
        return ScaleOutputs(latent, feats, decode(params, latent, rng=rng,
                                                  dropout=rates["heads"]))

    return ScaleModel(init, apply, spec, dims, decode)
