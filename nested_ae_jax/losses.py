"""Per-row losses of every head, their masked means, and weight penalties.

Masked means are how folds and padded mini-batches work: a row whose weight is 0 contributes
nothing, so a batch padded to a fixed size has exactly the loss (and gradient) of the unpadded
batch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from .config import HeadSpec, ScaleSpec
from .model import Params


def row_loss(head: HeadSpec, pred: jax.Array, target: jax.Array) -> jax.Array:
    """Loss of every row, (N,): mean over the head's output columns (MAE, MSE, Huber) or
    softmax cross-entropy against integer class codes ``target`` (N,)."""
    name = head.loss_name
    if name == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels(pred, target)
    err = pred - target
    if name == "mae":
        per = jnp.abs(err)
    elif name == "mse":
        per = err**2
    else:
        per = optax.huber_loss(pred, target, delta=head.huber_delta)
    return per.mean(axis=-1)


def head_targets(spec: ScaleSpec, outputs: dict, targets: dict) -> dict:
    """What each head is compared with: target columns from the data, or the standardised /
    coded input group it reconstructs (taken as a constant: gradients do not flow into a
    reconstruction target)."""
    out = {}
    for h in spec.heads:
        if h.kind == "regression" or (h.kind == "categorical" and not h.input):
            out[h.name] = targets[h.name]
        elif h.kind == "categorical":
            out[h.name] = jnp.argmax(outputs.features[h.input], axis=-1)
        else:
            out[h.name] = jax.lax.stop_gradient(outputs.features[h.input])
    return out


def head_row_losses(spec: ScaleSpec, outputs: dict, targets: dict) -> dict[str, jax.Array]:
    """{HEAD: (N,) per-row loss}."""
    want = head_targets(spec, outputs, targets)
    return {h.name: row_loss(h, outputs.heads[h.name], want[h.name]) for h in spec.heads}


def masked_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted mean over rows; 0 when every weight is 0."""
    return (values * weights).sum() / jnp.maximum(weights.sum(), 1e-12)


def kernels(variables: Any) -> list[jax.Array]:
    """Every leaf of a component's variables whose path ends in ``kernel`` (flax's name for
    the weights of Dense/Conv, linen and nnx alike; biases and anything else excluded)."""
    return [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]
            if path and getattr(path[-1], "key", getattr(path[-1], "name", None)) == "kernel"]


def kernel_penalty(variables: Any, l1: Any, l2: Any) -> jax.Array | float:
    """l1 * sum|K| + l2 * sum K^2 over the kernels K of one component; a coefficient that is a
    Python 0 costs nothing."""
    total = 0.0
    for k in kernels(variables):
        if not (isinstance(l1, (int, float)) and l1 == 0):
            total = total + l1 * jnp.abs(k).sum()
        if not (isinstance(l2, (int, float)) and l2 == 0):
            total = total + l2 * (k**2).sum()
    return total


def weight_penalty(params: Params, l1: dict, l2: dict) -> jax.Array | float:
    """The L1/L2 penalty of a scale: :func:`kernel_penalty` of the encoder and of every head.
    ``l1``/``l2``: {"encoder": c, "heads": {HEAD: c}}."""
    total = kernel_penalty(params["encoder"], l1["encoder"], l2["encoder"])
    for name, variables in params["heads"].items():
        total = total + kernel_penalty(variables, l1["heads"][name], l2["heads"][name])
    return total
