"""The training history record: chunks join in order, a checkpoint's extra columns are cut,
each model's losses at its own epoch, and the flat on-disk layout round-trips."""

import numpy as np
import pytest

from nested_ae_jax.history import History, Losses


def chunk(first: int, n: int, n_models: int = 2) -> History:
    epochs = np.arange(first, first + n)
    loss = np.add.outer(np.arange(n_models) * 100.0, epochs)  # model m, epoch e: 100 m + e
    return History.of_chunk(Losses({"y": loss, "total": 2 * loss}, {"y": -loss, "total": -loss}),
                            epochs)


def test_chunks_join_in_order_and_a_resume_drops_the_columns_past_its_epoch():
    h = chunk(1, 3).extend(chunk(4, 2))
    assert (h.n_models, h.n_epochs) == (2, 5)
    assert h.epoch[1].tolist() == [1, 2, 3, 4, 5]
    assert h.train["y"][1].tolist() == [101, 102, 103, 104, 105]
    cut = h.upto(3)
    assert cut.epoch[0].tolist() == [1, 2, 3] and cut.val["total"].shape == (2, 3)


def test_each_model_read_at_its_own_epoch_and_an_unevaluated_epoch_is_named():
    h = chunk(1, 4)
    at = h.at(np.array([2, 4]))
    assert at.train["y"].tolist() == [2, 104] and at.val["total"].tolist() == [-2, -104]
    assert h.last().train["total"].tolist() == [8, 208]
    with pytest.raises(ValueError, match=r"epoch\(s\) \[9\] were not evaluated"):
        h.at(np.array([1, 9]))


def test_flat_layout_round_trips():
    h = chunk(1, 3)
    flat = h.flat()
    assert list(flat) == ["train/y", "train/total", "val/y", "val/total", "epoch"]
    back = History.from_flat(flat)
    for a, b in zip(back, h):
        if isinstance(a, dict):
            assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
        else:
            assert (a == b).all()


def test_losses_of_several_parts_merge_into_one_record():
    a = Losses({"up.x": 1.0}, {"up.x": 2.0})
    b = Losses({"down.y": 3.0}, {"down.y": 4.0})
    assert Losses.merge([a, b]) == Losses({"up.x": 1.0, "down.y": 3.0},
                                          {"up.x": 2.0, "down.y": 4.0})
