"""Synthetic nested data: formulas, carried columns, determinism and intrinsic dimensions."""

import itertools

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from nested_ae_jax.errors import ConfigError
from nested_ae_jax.synthetic import HIDDEN_VARS, INTRINSIC_DIMS, make_nested_data


def own_descriptors(frames, scale):
    k = scale.removeprefix("scale")
    return [c for c in frames[scale].columns if c.startswith(f"s{k}_f")]


def test_frames_have_the_documented_columns():
    frames = make_nested_data(50, n_scales=3)
    assert list(frames) == ["scale1", "scale2", "scale3"]
    s1 = [f"s1_f{i}" for i in range(6)]
    s2 = [f"s2_f{i}" for i in range(6)] + ["s2_kind"]
    s3 = [f"s3_f{i}" for i in range(6)] + ["s3_kind"]
    assert list(frames["scale1"].columns) == [*s1, "y1"]
    assert list(frames["scale2"].columns) == [*s1, *s2, "y2"]
    assert list(frames["scale3"].columns) == [*s1, *s2, *s3, "y3"]
    assert all(f.shape[0] == 50 for f in frames.values())
    assert set(frames["scale2"]["s2_kind"]) == {"a", "b", "c"}
    assert list(make_nested_data(5)) == ["scale1", "scale2"]  # default: two scales
    assert INTRINSIC_DIMS == {"scale1": 2, "scale2": 3, "scale3": 3}


def test_targets_and_kind_follow_the_formulas():
    frames, x = make_nested_data(200, n_scales=3, seed=5, return_hidden=True)
    assert list(x.columns) == [f"x{i}" for i in range(8)] and x.abs().to_numpy().max() <= 1
    y1 = x.x0**2 + x.x7**2
    y2 = y1**2 + (x.x1 * x.x2) ** 4
    np.testing.assert_allclose(frames["scale1"]["y1"], y1)
    np.testing.assert_allclose(frames["scale2"]["y2"], y2)
    np.testing.assert_allclose(frames["scale3"]["y3"], y2**2 + (x.x3 * x.x4) ** 4)
    np.testing.assert_allclose(frames["scale2"]["s2_f0"], 2 * x.x0 + 3 * x.x1)
    kind = np.where((x.x1 >= 0) & (x.x2 >= 0), "a", np.where((x.x1 < 0) & (x.x2 < 0), "b", "c"))
    np.testing.assert_array_equal(frames["scale2"]["s2_kind"], kind)


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    a, b, c = (make_nested_data(30, n_scales=3, noise=0.1, seed=s) for s in (1, 1, 2))
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
        assert not np.allclose(a[name]["s1_f0"], c[name]["s1_f0"])
    assert not a["scale1"].duplicated().any()  # rows are independent draws


def test_scale2_carries_scale1_columns_with_equal_values_even_with_noise():
    frames = make_nested_data(40, n_scales=3, noise=0.2)
    s1 = own_descriptors(frames, "scale1")
    pd.testing.assert_frame_equal(frames["scale2"][s1], frames["scale1"][s1])
    s2 = [*own_descriptors(frames, "scale2"), "s2_kind"]
    pd.testing.assert_frame_equal(frames["scale3"][s2], frames["scale2"][s2])


def test_noise_changes_descriptors_only_by_the_requested_fraction_of_std():
    clean, x = make_nested_data(4000, noise=0.0, seed=3, return_hidden=True)
    noisy, x_noisy = make_nested_data(4000, noise=0.1, seed=3, return_hidden=True)
    pd.testing.assert_frame_equal(x, x_noisy)
    for scale, k in (("scale1", 1), ("scale2", 2)):
        pd.testing.assert_series_equal(noisy[scale][f"y{k}"], clean[scale][f"y{k}"])
        for col in own_descriptors(clean, scale):
            ratio = (noisy[scale][col] - clean[scale][col]).std() / clean[scale][col].std()
            assert 0.09 < ratio < 0.11, col
    pd.testing.assert_series_equal(noisy["scale2"]["s2_kind"], clean["scale2"]["s2_kind"])


def r2_of_polynomial_fit(inputs: np.ndarray, target: np.ndarray, degree: int = 7) -> float:
    """Held-out R^2 of a least-squares polynomial in ``inputs`` (n, d) fitted on the first 2/3."""
    powers = [p for p in itertools.product(range(degree + 1), repeat=inputs.shape[1]) if sum(p) <= degree]
    basis = np.stack([np.prod(inputs**np.array(p), axis=1) for p in powers], axis=1)
    n_fit = 2 * len(target) // 3
    with threadpool_limits(1):  # a tiny solve: BLAS threads only contend on a busy machine
        coef = np.linalg.lstsq(basis[:n_fit], target[:n_fit], rcond=None)[0]
    residual = target[n_fit:] - basis[n_fit:] @ coef
    return 1.0 - residual.var() / target[n_fit:].var()


@pytest.mark.parametrize("scale", ["scale1", "scale2", "scale3"])
def test_own_descriptors_have_the_documented_intrinsic_dimension(scale):
    frames, x = make_nested_data(900, n_scales=3, seed=7, return_hidden=True)
    hidden = HIDDEN_VARS[scale]
    assert len(hidden) == INTRINSIC_DIMS[scale]
    columns = own_descriptors(frames, scale)
    # every own descriptor is a smooth function of the scale's hidden variables alone ...
    for col in columns:
        assert r2_of_polynomial_fit(x[list(hidden)].to_numpy(), frames[scale][col].to_numpy()) > 0.9999, col
    # ... and none of those variables can be dropped
    for dropped in hidden:
        rest = x[[v for v in hidden if v != dropped]].to_numpy()
        worst = min(r2_of_polynomial_fit(rest, frames[scale][col].to_numpy()) for col in columns)
        assert worst < 0.9, dropped


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_rows": 0}, "n_rows=0"), ({"n_scales": 4}, "1 to 3"), ({"noise": -0.1}, "noise=-0.1")],
)
def test_bad_arguments_raise_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_nested_data(**kwargs)
