"""The adaptor: a trained run made ready for design -- the forward function
(:mod:`.forward`), the out-of-domain reference (:mod:`.reference`) and the design variables of a
request (:mod:`.variables`) in one :class:`Designer`. Compiled optimiser runs are cached by
:mod:`.optimiser`, per designer.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..composition import CompositionSpace
from .forward import ChainForward
from .forward import space_of_run as _space_of_run  # noqa: F401  (tests read it here)
from .reference import NO_REFERENCE, Reference, build_reference, ood_columns
from .variables import Variables, make_variables


class Designer(ChainForward):
    """A trained run made ready for design: the chain as one function of (fractions, device
    choices) and its head names (:class:`.forward.ChainForward`), the reference data for the
    out-of-domain score (``reference``, a :class:`.reference.Reference`) and the design
    variables of a request. Build once and pass it to :func:`design` & co. to reuse compiled
    code."""

    def __init__(self, run, space: CompositionSpace | None = None, *,
                 reference: bool = True) -> None:
        super().__init__(run, space)
        self.reference: Reference = build_reference(self) if reference else NO_REFERENCE

    def ood_columns(self, fractions: np.ndarray, recon: np.ndarray) -> dict[str, np.ndarray]:
        """The ``ood.*`` columns of candidates (see :func:`.reference.ood_columns`)."""
        return ood_columns(self, self.reference, fractions, recon)

    def variables(self, exclude: Iterable[str] = (), fix: Any = None,
                  max_ions_per_site: int | None = None) -> Variables:
        """The design variables of a request (see :func:`.variables.make_variables`)."""
        return make_variables(self, exclude, fix, max_ions_per_site)


def as_designer(run, space=None) -> Designer:
    """``run`` itself if it is a :class:`Designer`, else a new one of the trained run."""
    return run if isinstance(run, Designer) else Designer(run, space)
