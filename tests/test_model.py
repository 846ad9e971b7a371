"""One scale's model: pure init/apply over Flax parameter pytrees; losses by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, tiny_scale
from nested_ae_jax.config import load_config, parse_config
from nested_ae_jax.losses import weight_penalty
from nested_ae_jax.model import ScaleDims, scale_model
from nested_ae_jax.modules import DenseNet, hash_uniform, xavier
from nested_ae_jax.training import hyperparameters, loss_terms


def tiny_model(**extra):
    table = tiny_scale(**extra)
    table["inputs"]["kind"] = {"kind": "categorical", "column": "k"}
    table["heads"]["kind"] = {"kind": "categorical", "input": "kind"}
    spec = parse_config({"scales": {"s": table}}).scales[0]
    dims = ScaleDims((("x", 3), ("kind", 4)), (("y", 1), ("x", 3), ("kind", 4)))
    return scale_model(spec, dims)


def test_apply_maps_raw_inputs_to_latent_features_and_heads():
    model = tiny_model(latent=5)
    params = model.init(jax.random.key(0))
    stats = {"x": {"mean": jnp.array([1.0, 2.0, 3.0]), "scale": jnp.array([2.0, 2.0, 2.0])}}
    x = jnp.arange(21.0).reshape(7, 3)
    out = model.apply(params, stats, {"x": x, "kind": jnp.array([0, 1, 2, 3, 0, 1, 2])})
    assert out.latent.shape == (7, 5)
    assert out.heads["y"].shape == (7, 1)
    assert out.heads["x"].shape == (7, 3)
    assert out.heads["kind"].shape == (7, 4)
    np.testing.assert_allclose(out.features["x"], (x - stats["x"]["mean"]) / 2.0)
    np.testing.assert_array_equal(out.features["kind"].sum(axis=1), 1.0)
    assert params["encoder"]["params"]["Dense_0"]["kernel"].shape == (7, 5)  # 3 + 4 one-hot


def test_paper_ae1_has_1788_parameters_in_the_flax_tree():
    spec = load_config(REPO / "experiments/perovskite/ae1_bandgap.toml").scales[0]
    model = scale_model(spec, ScaleDims((("descriptors", 15),), (("gap", 1),
                                                                  ("descriptors", 15))))
    params = model.init(jax.random.key(0))
    assert sum(a.size for a in jax.tree.leaves(params)) == 1788
    dense = lambda i, o: {"kernel": (i, o), "bias": (o,)}  # noqa: E731
    assert jax.tree.map(jnp.shape, params) == {
        "encoder": {"params": {"Dense_0": dense(15, 12)}},
        "heads": {"gap": {"params": {"Dense_0": dense(12, 100), "Dense_1": dense(100, 1)}},
                  "descriptors": {"params": {"Dense_0": dense(12, 15)}}}}


@pytest.mark.parametrize("scheme, gain", [("xavier_normal", 1.0), ("xavier_normal", 10.0),
                                          ("xavier_uniform", 2.0)])
def test_xavier_init_has_the_glorot_spread_and_zero_bias(scheme, gain):
    net = DenseNet((200,), weight_init=scheme, gain=gain)
    layer = net.init(jax.random.key(1), jnp.zeros((1, 300)))["params"]["Dense_0"]
    expected_sd = gain * np.sqrt(2.0 / 500)
    assert abs(float(layer["kernel"].std()) / expected_sd - 1) < 0.02
    assert float(jnp.abs(layer["bias"]).max()) == 0.0
    w = np.asarray(xavier(scheme, gain)(jax.random.key(2), (300, 200)))
    bound = gain * np.sqrt(6.0 / 500)
    if scheme == "xavier_uniform":  # uniform on [-bound, bound)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    else:  # a normal, not truncated: about 0.27 % of draws beyond 3 sigma
        assert (np.abs(w) > 3 * expected_sd).mean() == pytest.approx(0.0027, abs=0.001)


def test_dropout_only_with_a_key():
    model = tiny_model()
    params = model.init(jax.random.key(0))
    stats = {"x": {"mean": jnp.zeros(3), "scale": jnp.ones(3)}}
    inputs = {"x": jax.random.normal(jax.random.key(2), (500, 3)),
              "kind": jnp.zeros(500, jnp.int32)}
    a = model.apply(params, stats, inputs).heads["y"]
    b = model.apply(params, stats, inputs).heads["y"]
    np.testing.assert_array_equal(a, b)
    c = model.apply(params, stats, inputs, rng=jax.random.key(3)).heads["y"]
    assert not np.allclose(a, c)
    # the reconstruction head has no dropout: the key changes nothing there
    np.testing.assert_array_equal(model.apply(params, stats, inputs, rng=jax.random.key(3))
                                  .heads["x"], model.apply(params, stats, inputs).heads["x"])


def test_loss_equals_a_hand_computation():
    """total = MAE(y) + MAE(reconstruction) + CE(kind) + 0.01 * sum|W_encoder|."""
    model = tiny_model()
    params = model.init(jax.random.key(4))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    kind = np.array([0, 1, 2, 3, 1, 0])
    y = rng.normal(size=(6, 1)).astype(np.float32)
    stats = {"x": {"mean": jnp.asarray(x.mean(0)), "scale": jnp.asarray(x.std(0))}}
    weights = jnp.ones(6)
    total, heads = loss_terms(model, params, stats, {"x": x, "kind": kind}, {"y": y}, weights,
                              hyperparameters(model.spec))

    def dense(variables, i, h):
        layer = variables["params"][f"Dense_{i}"]
        return h @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"])
    xs = (x - x.mean(0)) / x.std(0)
    feats = np.concatenate([xs, np.eye(4)[kind]], axis=1)
    z = np.tanh(dense(params["encoder"], 0, feats))
    hy = np.maximum(dense(params["heads"]["y"], 0, z), 0)
    pred_y = dense(params["heads"]["y"], 1, hy)
    pred_x = dense(params["heads"]["x"], 0, z)
    logits = dense(params["heads"]["kind"], 0, z)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    mae_y = np.abs(pred_y - y).mean()
    mae_x = np.abs(pred_x - xs).mean()
    ce = -logp[np.arange(6), kind].mean()
    l1 = 0.01 * np.abs(np.asarray(params["encoder"]["params"]["Dense_0"]["kernel"])).sum()
    np.testing.assert_allclose(heads["y"], mae_y, rtol=1e-5)
    np.testing.assert_allclose(heads["x"], mae_x, rtol=1e-5)
    np.testing.assert_allclose(heads["kind"], ce, rtol=1e-5)
    np.testing.assert_allclose(total, mae_y + mae_x + ce + l1, rtol=1e-5)


def test_penalty_covers_kernels_by_path_not_biases_or_other_leaves():
    """Any leaf named ``kernel``, at any depth of a component's variables (a user module's
    nested submodules too); biases, scales and embeddings never."""
    params = {"encoder": {"params": {
        "Dense_0": {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([100.0, 100.0])},
        "site_A": {"Dense_0": {"kernel": jnp.array([[-4.0]]), "bias": jnp.array([7.0])}},
        "LayerNorm_0": {"scale": jnp.array([30.0])}, "embedding": jnp.array([[9.0]])}},
        "heads": {"h": {"params": {"Dense_0": {"kernel": jnp.array([[3.0]]),
                                                "bias": jnp.array([50.0])}}}}}
    l1 = {"encoder": 0.5, "heads": {"h": 0.0}}
    l2 = {"encoder": 0.25, "heads": {"h": 2.0}}
    want = 0.5 * (1 + 2 + 4) + 0.25 * (1 + 4 + 16) + 2.0 * 9
    assert float(weight_penalty(params, l1, l2)) == pytest.approx(want)


def test_dropout_keeps_a_1_minus_p_share_of_units_scaled_by_1_over_1_minus_p():
    """An identity network with one hidden layer of 64 units on all-ones rows: after dropout
    each hidden unit is 0 or 1/(1-p). Over 4000 rows x 64 units the kept share is 1-p within
    4 binomial standard errors, and masks of neighbouring units, of neighbouring rows and of
    two keys (steps, models) are uncorrelated (|r| < 4/sqrt(n)); the same key gives the same
    mask. The built-in DenseNet draws it from its "dropout" rng, the rate a call argument."""
    p, n, width = 0.3, 4000, 64
    eye = {"kernel": jnp.eye(width), "bias": jnp.zeros(width)}
    variables = {"params": {"Dense_0": eye, "Dense_1": eye}}
    ones = jnp.ones((n, width))
    net = DenseNet((width, width), "linear", "linear")

    def run(key):
        return np.asarray(net.apply(variables, ones, True, dropout=jnp.float32(p),
                                    rngs={"dropout": key}))

    out = run(jax.random.key(0))
    kept = out != 0
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / (1 - p)], rtol=1e-6)
    share, se = kept.mean(), np.sqrt(p * (1 - p) / kept.size)
    assert abs(share - (1 - p)) < 4 * se
    assert abs(out.mean() - 1.0) < 4 * se / (1 - p)  # the expected activation is kept

    def r(a, b):
        return np.corrcoef(a.reshape(-1).astype(float), b.reshape(-1).astype(float))[0, 1]

    bound = 4 / np.sqrt(kept.size)
    assert abs(r(kept[:, :-1], kept[:, 1:])) < bound     # units
    assert abs(r(kept[:-1], kept[1:])) < bound           # rows
    step_key = jax.random.fold_in(jax.random.key(0), 1)  # the next step of the same model
    assert abs(r(kept, run(step_key) != 0)) < bound
    assert abs(r(kept, run(jax.random.key(1)) != 0)) < bound  # another model's seed
    np.testing.assert_array_equal(run(jax.random.key(0)), out)  # reproducible from the key


def test_hash_noise_is_uniform_and_streams_are_independent():
    """The counter-based noise: uniform on [0, 1) (a Kolmogorov-Smirnov distance within 1.63 /
    sqrt(n), the 1 % level), and different layers (streams), steps (keys) and neighbouring
    elements uncorrelated."""
    key = jax.random.key(7)
    u = np.asarray(hash_uniform(key, (500, 200))).reshape(-1)
    assert u.min() >= 0.0 and u.max() < 1.0
    ks = np.abs(np.sort(u) - (np.arange(1, u.size + 1) - 0.5) / u.size).max()
    assert ks < 1.63 / np.sqrt(u.size)
    bound = 4 / np.sqrt(u.size)
    others = [hash_uniform(key, (500, 200), stream=1),
              hash_uniform(jax.random.fold_in(key, 1), (500, 200)),
              hash_uniform(jax.random.key(8), (500, 200))]
    for v in others:
        assert abs(np.corrcoef(u, np.asarray(v).reshape(-1))[0, 1]) < bound
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < bound
    # under vmap over models each model's key gives its own noise
    keys = jax.random.split(key, 3)
    batched = np.asarray(jax.vmap(lambda k: hash_uniform(k, (100,)))(keys))
    np.testing.assert_array_equal(batched[1], np.asarray(hash_uniform(keys[1], (100,))))
    assert not np.allclose(batched[0], batched[1])


def test_group_features_is_the_one_hot_or_standardisation_every_caller_had():
    """model.group_features replaced three featurisers (the encoder's jax.nn.one_hot and
    standardisation, compare's numpy np.eye / standardisation, bo's raw one-hot): the same
    values and dtypes, in jax (also under jit) and in numpy."""
    from nested_ae_jax.model import group_features

    codes = np.array([0, 2, 1, 2])
    one_hot = group_features("categorical", jnp.asarray(codes), 3)
    assert one_hot.dtype == jax.nn.one_hot(codes, 3).dtype
    np.testing.assert_array_equal(one_hot, jax.nn.one_hot(codes, 3))
    np.testing.assert_array_equal(group_features("categorical", codes, 3, xp=np), np.eye(3)[codes])
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    stats = {"mean": x.mean(0), "scale": x.std(0)}
    expected = (x - stats["mean"]) / stats["scale"]
    np.testing.assert_array_equal(group_features("numeric", x, 4, stats, xp=np), expected)
    traced = jax.jit(lambda a: group_features("numeric", a, 4, stats))(x)
    np.testing.assert_array_equal(traced,
                                  jax.jit(lambda a: (a - stats["mean"]) / stats["scale"])(x))
    np.testing.assert_array_equal(group_features("numeric", x, 4, xp=np), x)  # raw: as it is
