"""Batches of clips: a collate function, a multi-worker DataLoader, and bad-file accounting across workers.

Workers cannot share a counter, so each item carries the unreadable files it passed over (`skipped`);
`ClipLoader` feeds them to one `BadDataTracker` in the main process, which warns once per file and stops
the job with a clear error only when more than `max_bad_fraction` of the source's files have failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vjepa_edge.data.health import BadDataTracker
from vjepa_edge.errors import DataError


def collate_clips(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack clips and labels; keep paths as a list and concatenate the skipped files."""
    labels = samples[0]["labels"]
    return {
        "clip": torch.stack([s["clip"] for s in samples]),
        "label": torch.tensor([s["label"] for s in samples], dtype=torch.long),
        "labels": {k: torch.tensor([s["labels"][k] for s in samples], dtype=torch.long) for k in labels},
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.long),
        "path": [s["path"] for s in samples],
        "skipped": [item for s in samples for item in s["skipped"]],
    }


def _num_files(dataset: Dataset) -> int:
    entries = getattr(dataset, "entries", None)
    return len(entries) if entries is not None else len(dataset)  # type: ignore[arg-type]


class ClipLoader:
    """A DataLoader over a clip dataset that tracks unreadable files; iterate it like the DataLoader.

    `collate` defaults to `collate_clips`; a mask collator (`MaskCollator(masker, collate_clips)`) also fits,
    in which case the batch dict is the first element of what it returns.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        shuffle: bool = False,
        num_workers: int = 0,
        drop_last: bool = False,
        seed: int = 0,
        collate: Callable[[list[dict[str, Any]]], Any] | None = None,
        max_bad_fraction: float = 0.05,
        batch_sampler: Sampler[list[int]] | None = None,
        health: BadDataTracker | None = None,
    ) -> None:
        """`batch_sampler` (e.g. a `StepBatchSampler`) replaces batch_size/shuffle/drop_last; `health` shares
        one bad-file tracker between the loaders of successive epochs."""
        self.dataset = dataset
        self.health = health or BadDataTracker(_num_files(dataset), max_bad_fraction)
        self.seed = seed
        self.epoch = 0
        self._generator = torch.Generator()
        batching: dict[str, Any] = (
            {"batch_sampler": batch_sampler}
            if batch_sampler is not None
            else {"batch_size": batch_size, "shuffle": shuffle, "drop_last": drop_last, "generator": self._generator}
        )
        self.loader = DataLoader(
            dataset,
            num_workers=num_workers,
            collate_fn=collate or collate_clips,
            persistent_workers=False,
            prefetch_factor=4 if num_workers > 0 else None,
            **batching,
        )

    def set_epoch(self, epoch: int) -> None:
        """Shuffle order and augmentation are functions of (seed, epoch): a resumed run sees the same data."""
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self._generator.manual_seed(self.seed * 100_003 + self.epoch)
        for batch in self.loader:
            first = batch[0] if isinstance(batch, tuple) else batch
            self.health.record(first["skipped"])
            yield batch


class StepBatchSampler(Sampler[list[int]]):
    """The batches of one epoch for one process, as a pure function of (seed, epoch, rank), from batch `start`.

    Every epoch is a permutation of the dataset drawn from (seed, epoch), cut into global batches of
    `batch_size * world_size` clips (the incomplete last one is dropped); process `rank` takes its slice of
    each global batch. A run resumed at step s starts at epoch `s // steps_per_epoch`, batch
    `s % steps_per_epoch`, and sees exactly the clips an uninterrupted run would have seen.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_items, self.batch_size, self.seed, self.epoch = num_items, batch_size, seed, epoch
        self.rank, self.world_size = rank, world_size
        self.steps = steps_per_epoch(num_items, batch_size, world_size)
        if not 0 <= start <= self.steps:
            raise ValueError(f"start={start} is outside the epoch's {self.steps} batches")
        self.start = start

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_items, generator=g)
        global_batch = self.batch_size * self.world_size
        for j in range(self.start, self.steps):
            batch = order[j * global_batch : (j + 1) * global_batch]
            yield batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size].tolist()


def steps_per_epoch(num_items: int, batch_size: int, world_size: int = 1) -> int:
    """Full global batches in one pass over `num_items` clips; an error when there is not even one."""
    steps = num_items // (batch_size * world_size)
    if steps < 1:
        raise DataError(
            f"the data source has {num_items} clips, fewer than one global batch "
            f"({batch_size} per process x {world_size} processes)",
            hint="lower the batch size or add videos",
        )
    return steps
