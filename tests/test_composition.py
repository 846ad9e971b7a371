"""The per-ion property table: derived from pure-site rows, it rebuilds the descriptor columns
of both perovskite data sets from their composition columns; and the device file's
conventions (X site named C, coefficients summing to 3 on it, averaging, ion names)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nested_ae_jax import composition as C
from nested_ae_jax import datasets
from nested_ae_jax.errors import DataError

AE1_COLUMNS = [f"{s}_{p}" for s in "ABX" for p in ("ion_rad", "at_wt", "EA", "IE", "En")]


@pytest.fixture(scope="module")
def frames():
    return datasets.load_bandgaps(), datasets.load_device_efficiencies()


def test_table_rebuilds_bandgap_descriptors(frames):
    gap, _ = frames
    space = C.ion_table(gap)
    assert space.ions == ("K", "Rb", "Cs", "MA", "FA", "Ca", "Sr", "Ba", "Ge", "Sn", "Pb",
                          "Cl", "Br", "I")
    cols = [f"{s}_{p}" for s in "ABX" for p in C.PROPERTIES]
    truth = gap[cols].to_numpy()
    # the fraction columns are rounded to 3 decimals (some X sites sum to 1.004) and the
    # descriptors to 3 significant figures: normalised fractions rebuild every one of the 36
    # columns within 0.71 % (0.81 % with the raw fractions)
    rel = np.abs(space.descriptors(space.fractions_from_frame(gap, normalise=True), cols)
                 - truth) / np.abs(truth)
    assert rel.max() < 0.0075
    raw = np.abs(space.descriptors(space.fractions_from_frame(gap), cols) - truth) / np.abs(truth)
    assert raw.max() < 0.0085
    # in AE1's standardised units (its 15 inputs): at most 0.067 std (X_IE: 1026 -> 1020, the
    # file's rounding), median ~0
    x = space.fractions_from_frame(gap, normalise=True)
    err = np.abs(space.descriptors(x, AE1_COLUMNS) - gap[AE1_COLUMNS].to_numpy()) \
        / gap[AE1_COLUMNS].to_numpy().std(axis=0)
    assert err.max() < 0.07 and np.median(err) < 0.005


def test_device_file_conventions(frames):
    gap, dev = frames
    space = C.ion_table(gap)
    # ion names: 'na' for empty slots, a leading space after the first slot, all known ions
    assert (dev["a_2"].astype(str).str.startswith(" ") | (dev["a_2"] == "na")).all()
    names = {str(v).strip() for s in C.DEVICE_SLOTS.values() for c in s for v in dev[c]}
    assert names - {"na"} <= set(space.ions)
    assert names - {"na"} == {"MA", "FA", "Cs", "Rb", "Pb", "Sn", "Ge", "I", "Br"}
    # coefficients: A and B sum to 1, the X site ("c_*") to 3
    for site, slots in C.DEVICE_SLOTS.items():
        total = dev[[f"{s}_coeff" for s in slots]].astype(float).sum(axis=1)
        assert np.allclose(total, C.DEVICE_STOICHIOMETRY[site])
    # the X site is named C, and its descriptors are coefficient-weighted *means* (coeff / 3)
    assert C.device_columns(["X_ion_rad", "A_En", "B_at_wt"]) == \
        ["C_ion_radius", "A_EN", "B_atom_wt"]
    assert not any(c.startswith("X_") for c in dev.columns)
    f = C.device_fractions(dev, space, "device")
    for sl in space.site_slices().values():
        assert np.allclose(f[:, sl].sum(axis=1), 1.0)
    truth = dev[C.device_columns(AE1_COLUMNS)].to_numpy()
    rebuilt = space.descriptors(f, AE1_COLUMNS)
    rel = np.abs(rebuilt - truth) / np.abs(truth)
    assert rel.max() < 0.003  # the device file has one more digit than the band-gap file
    x = slice(10, 15)
    summed = rebuilt[:, x] * 3  # a sum over X ions instead of the mean is far off
    assert (np.abs(summed - truth[:, x]) / np.abs(truth[:, x])).min() > 1.5
    err_std = (np.abs(rebuilt - truth) / gap[AE1_COLUMNS].to_numpy().std(axis=0)).max()
    assert err_std < 0.02  # in AE1's standardised units (X_EA, X_IE: 0.019, 0.017)


def test_ion_table_errors_and_formula():
    frame = pd.DataFrame({"A1": [1.0, 0.0, 0.5], "A2": [0.0, 1.0, 0.5],
                          "A_p": [1.0, 3.0, 2.0]})
    space = C.ion_table(frame, sites={"A": ("A1", "A2")}, properties=("p",))
    assert np.allclose(space.descriptors(frame[["A1", "A2"]].to_numpy(), ["A_p"])[:, 0],
                       frame["A_p"])
    with pytest.raises(DataError, match="no row where site A is pure"):
        C.ion_table(frame.iloc[[0, 2]], sites={"A": ("A1", "A2")}, properties=("p",))
    bad = pd.concat([frame, pd.DataFrame({"A1": [1.0], "A2": [0.0], "A_p": [1.5]})])
    with pytest.raises(DataError, match="pure-A1 rows disagree"):
        C.ion_table(bad, sites={"A": ("A1", "A2")}, properties=("p",))
    with pytest.raises(DataError, match="not SITE_PROPERTY"):
        space.weights(["B_p"])
    perov = C.CompositionSpace(tuple(C.SITES.items()), ("p",),
                               np.zeros((sum(map(len, C.SITES.values())), 1)))
    f = np.zeros(len(perov.ions))
    f[perov.ions.index("Cs")], f[perov.ions.index("FA")] = 0.25, 0.75
    f[perov.ions.index("Sn")] = 1.0
    f[perov.ions.index("I")] = 1.0
    assert perov.formula(f) == "Cs0.25FA0.75SnI3"
