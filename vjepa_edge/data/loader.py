"""Batches of clips: a collate function, a multi-worker DataLoader, and bad-file accounting across workers.

Workers cannot share a counter, so each item carries the unreadable files it passed over (`skipped`);
`ClipLoader` feeds them to one `BadDataTracker` in the main process, which warns once per file and stops
the job with a clear error only when more than `max_bad_fraction` of the source's files have failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from vjepa_edge.data.health import BadDataTracker


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
    ) -> None:
        self.dataset = dataset
        self.health = BadDataTracker(_num_files(dataset), max_bad_fraction)
        self.seed = seed
        self.epoch = 0
        self._generator = torch.Generator()
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            drop_last=drop_last,
            collate_fn=collate or collate_clips,
            generator=self._generator,
            persistent_workers=False,
            prefetch_factor=4 if num_workers > 0 else None,
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
