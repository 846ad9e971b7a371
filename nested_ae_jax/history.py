"""What a training run records: the losses of one evaluation (:class:`Losses`) and of all
the evaluated epochs of a batch of models (:class:`History`).

A loss *term* is a head's name, ``"total"`` (the heads' weighted sum, without penalty) or,
in joint fine-tuning, ``"SCALE.HEAD"`` / ``"SCALE.total"``. Both records are pytrees
(NamedTuples of dicts), so a compiled epoch returns :class:`Losses` and ``vmap``/``scan``
stack it. On disk (checkpoints, ``history.csv``) a history is the flat table of
:meth:`History.flat`: ``{"train/TERM", "val/TERM", "epoch"}`` columns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SPLITS = ("train", "val")


class Losses(NamedTuple):
    """Masked mean losses per term on a model's training and validation rows: {TERM: value}
    (a scalar for one model at one evaluation; stacked, (M,) or (M, E))."""

    train: dict
    val: dict

    @staticmethod
    def merge(parts: list[Losses]) -> Losses:
        """One record of several with distinct terms (fine-tuning: one part per scale)."""
        return Losses({k: v for p in parts for k, v in p.train.items()},
                      {k: v for p in parts for k, v in p.val.items()})


class History(NamedTuple):
    """Losses of M models at their E evaluated epochs. epoch: (M, E) int32, 1-based (as in
    history.csv); train, val: {TERM: (M, E)}."""

    epoch: np.ndarray
    train: dict
    val: dict

    @classmethod
    def of_chunk(cls, losses: Losses, epochs: np.ndarray) -> History:
        """The history of one compiled chunk: ``losses`` with (M, E) leaves recorded at the
        1-based ``epochs`` (E,)."""
        n_models = len(next(iter(losses.train.values())))
        return cls(np.tile(np.asarray(epochs, np.int32), (n_models, 1)),
                   *({k: np.asarray(v) for k, v in split.items()} for split in losses))

    @property
    def n_models(self) -> int:
        return int(np.shape(self.epoch)[0])

    @property
    def n_epochs(self) -> int:
        """Evaluated epochs recorded (columns)."""
        return int(np.shape(self.epoch)[1])

    def extend(self, later: History) -> History:
        """This history followed by the ``later`` chunk's columns."""
        join = lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)], axis=1)  # noqa: E731
        return History(join(self.epoch, later.epoch),
                       *({k: join(mine[k], theirs[k]) for k in mine}
                         for mine, theirs in ((self.train, later.train),
                                              (self.val, later.val))))

    def upto(self, epoch: int) -> History:
        """The columns of the epochs up to ``epoch`` (a checkpoint may hold more)."""
        keep = np.asarray(self.epoch)[0] <= epoch
        return History(np.asarray(self.epoch)[:, keep],
                       *({k: np.asarray(v)[:, keep] for k, v in split.items()}
                         for split in (self.train, self.val)))

    def at(self, epoch: np.ndarray) -> Losses:
        """Each model's losses at its own 1-based ``epoch`` (M,): (M,) leaves. Raises
        ValueError for an epoch that was not evaluated."""
        epoch = np.asarray(epoch)
        hit = np.asarray(self.epoch) == epoch[:, None]
        if not hit.any(axis=1).all():
            missing = epoch[~hit.any(axis=1)]
            raise ValueError(f"epoch(s) {sorted(set(missing.tolist()))} were not evaluated "
                             "(training.eval_every)")
        column, rows = hit.argmax(axis=1), np.arange(len(epoch))
        return Losses(*({k: np.asarray(v)[rows, column] for k, v in split.items()}
                        for split in (self.train, self.val)))

    def last(self) -> Losses:
        """Every model's losses at the newest recorded epoch: (M,) leaves."""
        return Losses(*({k: np.asarray(v)[:, -1] for k, v in split.items()}
                        for split in (self.train, self.val)))

    def flat(self) -> dict[str, np.ndarray]:
        """{"train/TERM": (M, E), ..., "val/TERM": ..., "epoch": (M, E)}: the layout of
        checkpoints and of history.csv's loss columns."""
        out = {f"{split}/{k}": v for split, terms in zip(SPLITS, (self.train, self.val))
               for k, v in terms.items()}
        out["epoch"] = self.epoch
        return out

    @classmethod
    def from_flat(cls, table: dict) -> History:
        """The inverse of :meth:`flat`."""
        terms = {split: {k.split("/", 1)[1]: v for k, v in table.items()
                         if k.startswith(split + "/")} for split in SPLITS}
        return cls(table["epoch"], terms["train"], terms["val"])
