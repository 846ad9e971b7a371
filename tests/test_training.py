"""Compiled training of many models at once: masks, padding, determinism, guards."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_scale
from nested_ae_jax.config import parse_config
from nested_ae_jax.data import Categories, ScaleData
from nested_ae_jax.fitting import model_batch, replica_layout
from nested_ae_jax.model import ScaleDims, scale_model
from nested_ae_jax.splits import Folds
from nested_ae_jax.training import (NonFiniteLoss, hyperparameters, loss_terms, scale_task,
                                    steps_per_epoch, train_models)


def train(model, data, batch, **kw):
    training = model.spec.training
    return train_models(scale_task(model), data, batch, epochs=training.epochs,
                        chunk_epochs=training.chunk_epochs, **kw)


def setup(n=30, epochs=10, lr=5e-2, folds=3, batch=8):
    table = tiny_scale(epochs=epochs, batch=batch)
    table["training"]["learning_rate"] = lr
    spec = parse_config({"scales": {"s": table}}).scales[0]
    model = scale_model(spec, ScaleDims((("x", 3),), (("y", 1), ("x", 3))))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [2.0], [-1.0]])).astype(np.float32)
    fold = np.arange(n) % folds
    train = np.stack([fold != f for f in range(folds)]).astype(np.float32)
    stats = {"x": {"mean": np.zeros((folds, 3), np.float32),
                   "scale": np.ones((folds, 3), np.float32)}}
    scale_data = ScaleData(None, {"x": x}, {"y": y}, Categories({}, {}), "test")
    batch_ = model_batch(spec, scale_data, replica_layout(spec, Folds(fold, train, 1 - train)),
                         stats)
    data = {"inputs": {"x": jnp.asarray(x)}, "targets": {"y": jnp.asarray(y)}}
    return spec, model, data, batch_


def test_padded_masked_batch_gives_the_gradient_of_the_unpadded_batch():
    spec, model, data, _ = setup()
    params = model.init(jax.random.key(0))
    stats = {"x": {"mean": jnp.zeros(3), "scale": jnp.ones(3)}}
    hp = hyperparameters(spec)

    def grad(inputs, targets, weights):
        return jax.grad(lambda p: loss_terms(model, p, stats, inputs, targets, weights, hp)[0])(
            params)

    small = grad({"x": data["inputs"]["x"][:5]}, {"y": data["targets"]["y"][:5]}, jnp.ones(5))
    idx = jnp.array([0, 1, 2, 3, 4, 0, 0, 0])  # padded to 8 with a repeated row, masked out
    padded = grad({"x": data["inputs"]["x"][idx]}, {"y": data["targets"]["y"][idx]},
                  jnp.array([1.0] * 5 + [0.0] * 3))
    for a, b in zip(jax.tree.leaves(small), jax.tree.leaves(padded)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_steps_per_epoch_keeps_the_last_partial_batch():
    for n, folds, size, want in ((30, 3, 8, (3, False)),   # 20 training rows per fold
                                 (31, 3, 7, (3, False)),   # 20 or 21 rows: 3 batches each
                                 (22, 2, 11, (1, False)),  # 11 rows each
                                 (23, 2, 11, (2, True))):  # 11 and 12 rows: 1 vs 2 batches
        _, model, _, batch = setup(n=n, folds=folds, batch=size)
        assert steps_per_epoch(scale_task(model), batch) == want


def test_training_lowers_the_loss_and_records_every_epoch():
    spec, model, data, batch = setup()
    state, history = train(model, data, batch)
    assert history.train["total"].shape == (3, 10) and history.n_epochs == 10
    assert set(history.train) == set(history.val) == {"y", "x", "total"}
    assert set(history.flat()) == {"train/y", "train/x", "train/total", "val/y", "val/x",
                                   "val/total", "epoch"}  # history.csv's and checkpoints' layout
    assert history.epoch[0].tolist() == list(range(1, 11))
    assert (history.train["y"][:, -1] < 0.5 * history.train["y"][:, 0]).all()
    assert np.asarray(state.epoch).tolist() == [10, 10, 10]
    best = np.asarray(state.best_epoch)
    np.testing.assert_allclose(np.asarray(state.best_loss),
                               history.val["total"][np.arange(3), best], rtol=1e-6)
    np.testing.assert_array_equal(history.at(best + 1).val["total"],
                                  history.val["total"][np.arange(3), best])


def test_same_seed_same_numbers_and_folds_share_initial_weights():
    spec, model, data, batch = setup()
    s1, h1 = train(model, data, batch)
    s2, h2 = train(model, data, batch)
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(h1.val["total"], h2.val["total"])
    from nested_ae_jax.training import init_state
    init = init_state(scale_task(model), batch).params
    w = np.asarray(init["encoder"]["params"]["Dense_0"]["kernel"])
    np.testing.assert_array_equal(w[0], w[1])  # the paper: every fold from seed 0's weights


def test_resuming_from_a_chunk_equals_an_uninterrupted_run():
    spec, model, data, batch = setup()
    saved = {}

    def keep_first_chunk(state, history, done, seconds):
        if done == 5:  # what a checkpoint after the first chunk of 5 epochs would hold
            saved["state"], saved["history"] = state, history

    full_state, full_hist = train(model, data, batch, on_chunk=keep_first_chunk)
    resumed, hist = train(model, data, batch, state=saved["state"],
                                 history=saved["history"])
    for a, b in zip(jax.tree.leaves(full_state.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(full_hist.val["total"], hist.val["total"], rtol=1e-6)
    np.testing.assert_array_equal(full_hist.epoch, hist.epoch)


def test_non_finite_loss_stops_training_and_names_model_epoch_head():
    spec, model, data, batch = setup(epochs=10, lr=1e30)
    with pytest.raises(NonFiniteLoss) as err:
        train(model, data, batch)
    assert err.value.head in ("y", "x")
    assert 0 <= err.value.epoch < 10 and 0 <= err.value.model < 3


def test_losses_recorded_every_k_epochs_and_at_chunk_ends_without_changing_training():
    spec, model, data, batch = setup(epochs=10)  # chunks of 5 epochs
    s1, h1 = train(model, data, batch)
    sk, hk = train(model, data, batch, eval_every=3)
    assert hk.epoch[0].tolist() == [3, 5, 8, 10]
    cols = [e - 1 for e in hk.epoch[0]]
    np.testing.assert_allclose(hk.val["total"], h1.val["total"][:, cols], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(sk.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert set(np.asarray(sk.best_epoch) + 1) <= {3, 5, 8, 10}  # best among evaluated epochs


def test_cpu_compile_options_apply_to_training_and_to_loading_a_run(monkeypatch):
    """The suite compiles unoptimised (XLA_FLAGS, see conftest), which turns the training
    programs' own CPU option off: here it is on, as for a user. Training runs with it, the
    result is the same model (within rounding), and the checkpoint template (traced under
    eval_shape when a run is loaded) builds."""
    from nested_ae_jax import training
    from nested_ae_jax.store import state_template

    spec, model, data, batch = setup()
    _, plain = train(model, data, batch)
    monkeypatch.setenv("XLA_FLAGS", "")
    if jax.default_backend() == "cpu":
        assert training._compiler_options() == {"xla_backend_optimization_level": 1}
    monkeypatch.setattr(training, "_compiled_init", functools.cache(
        training._compiled_init.__wrapped__))  # compiled afresh, with the options
    monkeypatch.setattr(training, "_compiled_chunk", functools.cache(
        training._compiled_chunk.__wrapped__))
    _, optimised = train(model, data, batch)
    np.testing.assert_allclose(optimised.train["total"], plain.train["total"], rtol=1e-3)
    template = state_template(model, 3, spec.training.epochs)
    assert jax.tree.leaves(template)


def test_epoch_shuffle_is_an_exact_permutation_of_the_training_rows():
    """200,000 rows (a 16-bit ranking would tie ~3 rows per value and order ties by index):
    every training row exactly once, first and in no index-sorted runs; vmapped over models
    and epochs (keys folded with the epoch), deterministic, different per epoch; with
    ``wrap`` the shuffled training rows cycle."""
    from nested_ae_jax.training import epoch_rows

    n, size = 200_000, 1000
    mask = jnp.asarray(np.random.default_rng(0).random((2, n)) < 0.7, jnp.float32)
    keys = jax.vmap(lambda e: jax.random.fold_in(jax.random.key(3), e))(jnp.arange(2))
    rows = jax.jit(jax.vmap(lambda k, m: epoch_rows(k, m, n // size, size, False)))
    (idx, w), (again, _) = rows(keys, mask), rows(keys, mask)
    np.testing.assert_array_equal(idx, again)
    for m in range(2):
        order, valid = np.asarray(idx[m]).ravel(), np.asarray(w[m]).ravel() > 0
        train_rows = np.flatnonzero(np.asarray(mask[m]))
        assert valid.sum() == len(train_rows)
        np.testing.assert_array_equal(np.sort(order[valid]), train_rows)
        assert np.mean(np.diff(order[valid]) > 0) < 0.51  # a random order, not sorted runs
    assert np.mean(np.asarray(idx[0]) == np.asarray(idx[1])) < 0.01
    wrapped, w = epoch_rows(keys[0], (jnp.arange(50) < 10).astype(jnp.float32), 3, 4, True)
    wrapped = np.asarray(wrapped).ravel()
    np.testing.assert_array_equal(wrapped[10:], wrapped[:2])
    assert np.sort(wrapped[:10]).tolist() == list(range(10)) and (np.asarray(w) == 1).all()
