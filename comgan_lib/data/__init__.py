"""Datasets. Every dataset returns dict items: ``image`` [3,R,R] in [-1, 1], ``mask`` [1,R,R] in
{0, 1} when the dataset has masks, and ``index``; ``build_dataset`` picks one from the parameters.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from comgan_lib.config import Params


def build_dataset(params: Params, split: str = "train", **kwargs) -> Dataset:
    """The dataset named by ``params.data.kind`` for ``split`` ("train" or "test")."""
    d = params.data
    if d.kind == "synthetic":
        from comgan_lib.data.synthetic import SyntheticDataset

        size = d.train_size if split == "train" else d.test_size
        return SyntheticDataset(
            resolution=d.resolution,
            split=split,
            size=size,
            seed=d.seed,
            num_species=d.num_species,
            num_scenes=d.num_scenes,
            **kwargs,
        )
    if d.kind == "folder":
        from comgan_lib.data.folder import ImageFolderDataset

        return ImageFolderDataset(
            d.root,
            d.resolution,
            split=split,
            holdout_fraction=d.holdout_fraction,
            seed=d.seed,
            resize_mode=d.resize_mode,
            on_bad_file=d.on_bad_file,
            **kwargs,
        )
    raise ValueError(f"unknown data.kind {d.kind!r}")


def stack_items(dataset: Dataset, limit: int | None = None, batch_size: int = 256) -> dict:
    """The first ``limit`` items (all by default) collated into batched tensors, in order."""
    import torch
    from torch.utils.data import DataLoader, Subset

    n = len(dataset) if limit is None else min(limit, len(dataset))
    loader = DataLoader(Subset(dataset, range(n)), batch_size=batch_size, shuffle=False)
    batches = list(loader)
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
