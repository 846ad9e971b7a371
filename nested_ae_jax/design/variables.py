"""Design variables: which ions and device choices a request lets vary.

Site fractions of the ions allowed (excluded ions exactly 0, a fixed site one-hot), every
combination of the allowed device choices, and the cap on ions mixed per site, as
:class:`Variables`. :meth:`.adaptor.Designer.variables` builds them by :func:`make_variables`,
which reads only the forward function's ``space`` and ``cats`` (:mod:`.forward`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import did_you_mean
from .forward import ChainForward
from .objectives import DesignError


@dataclass
class Variables:
    """What may vary: ``allowed`` (n_ions,) ions allowed (excluded = False, fixed sites one-hot),
    ``combos`` (n_combos, n_cat) allowed device-choice codes, ``cap`` per-site ion limit."""

    allowed: np.ndarray
    combos: np.ndarray
    cap: int | None
    exclude: tuple[str, ...]
    fixed_sites: dict[str, str]


def _parse_fix(fix: Any) -> dict[str, str]:
    if fix is None:
        return {}
    if isinstance(fix, Mapping):
        return {str(k): str(v) for k, v in fix.items()}
    if isinstance(fix, str):
        fix = [fix]
    out = {}
    for item in fix:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DesignError(f"--fix '{item}': expected SITE=ION (e.g. X=I) or "
                              "COLUMN=CHOICE (e.g. HTL_stack_sequence=PTAA)")
        out[key.strip()] = value.strip()
    return out


def make_variables(d: ChainForward, exclude: Iterable[str], fix: Any, cap: int | None
                   ) -> Variables:
    """The design variables of designer ``d`` (its ``space`` and ``cats``) under a request.

    Args: exclude: ions or device-choice labels never used ('Pb', or 'Pb,Sn'); fix: pure sites
    and fixed device choices ({'X': 'I'}, or ['X=I', 'HTL_stack_sequence=PTAA']); cap: at most
    this many ions mixed on each site (None: no limit).
    Returns: :class:`Variables`; DesignError naming the bad item if any."""
    space = d.space
    if isinstance(exclude, str):
        exclude = [exclude]
    exclude = tuple(e.strip() for x in exclude for e in str(x).split(",") if e.strip())
    allowed = np.ones(len(space.ions), bool)
    cat_allowed = [np.ones(len(c.labels), bool) for c in d.cats]
    labels_all = [lab for c in d.cats for lab in c.labels]
    for e in exclude:
        if e in space.ions:
            allowed[space.ions.index(e)] = False
            continue
        hits = [(k, c.labels.index(e)) for k, c in enumerate(d.cats) if e in c.labels]
        if not hits:
            raise DesignError(f"--exclude '{e}': not an ion ({', '.join(space.ions)}) nor a "
                              f"device choice{did_you_mean(e, [*space.ions, *labels_all])}")
        for k, j in hits:
            cat_allowed[k][j] = False
    slices = space.site_slices()
    fixed_sites = {}
    for key, value in _parse_fix(fix).items():
        if key in slices:
            ions = dict(space.sites)[key]
            if value not in ions:
                raise DesignError(f"--fix {key}={value}: site {key} has ions "
                                  f"{', '.join(ions)}{did_you_mean(value, ions)}")
            if not allowed[space.ions.index(value)]:
                raise DesignError(f"--fix {key}={value}: {value} is also excluded")
            allowed[slices[key]] = False
            allowed[space.ions.index(value)] = True
            fixed_sites[key] = value
            continue
        k = next((i for i, c in enumerate(d.cats) if key in (c.group, c.column)), None)
        if k is None:
            raise DesignError(f"--fix '{key}': not a site ({', '.join(slices)}) nor a device "
                              f"choice column{did_you_mean(key, [c.column for c in d.cats])}")
        labels = d.cats[k].labels
        if value not in labels:
            raise DesignError(f"--fix {key}={value}: choices are "
                              f"{', '.join(labels)}{did_you_mean(value, labels)}")
        if not cat_allowed[k][labels.index(value)]:
            raise DesignError(f"--fix {key}={value}: {value} is also excluded")
        cat_allowed[k][:] = False
        cat_allowed[k][labels.index(value)] = True
    for site, sl in slices.items():
        if not allowed[sl].any():
            raise DesignError(f"every ion of site {site} is excluded")
    for c, ok in zip(d.cats, cat_allowed):
        if not ok.any():
            raise DesignError(f"every choice of {c.column} is excluded")
    if cap is not None and cap < 1:
        raise DesignError("--max-ions-per-site must be >= 1")
    combos = np.array(list(itertools.product(*[np.flatnonzero(ok) for ok in cat_allowed])),
                      np.int32).reshape(-1, len(d.cats)) if d.cats else np.zeros((1, 0), np.int32)
    return Variables(allowed, combos, cap, exclude, fixed_sites)
