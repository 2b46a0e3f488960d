"""Datasets. Every dataset returns dict items: ``image`` [3,R,R] in [-1, 1], ``mask`` [1,R,R] in
{0, 1} when the dataset has masks, and ``index``; ``build_dataset`` picks one from the parameters.

Modules: ``synthetic`` (embedded default), ``folder`` (your images; also CLEVR6 after its
converter), ``cub``, ``stanford_dogs``, ``stanford_cars``, ``drc`` (DRC's processed Dogs/Cars
masks), ``flowers``, ``class_folders`` (FS-100, ImageFolder layouts); ``check`` validates a dataset
folder before a run (``python -m comgan_lib.data.check PARAMS``). Layouts: docs/DATASETS.md.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from comgan_lib.config import Params

EVAL_CROPS = {"comgan": "full", "drc": "box_stretch"}  # data.eval_protocol -> CUB crop


def build_dataset(
    params: Params, split: str = "train", purpose: str | None = None, **kwargs
) -> Dataset:
    """The dataset named by ``params.data.kind`` for ``split``.

    Splits: "train" and "test" everywhere; "all" (every image) for every kind but synthetic;
    "val" where the layout has one (CUB with split_scheme redo, Flowers). Training reads
    ``params.data.train_split`` and segmentation is scored on ``params.data.eval_split``.

    ``purpose`` picks the images' preparation where a dataset has two: "train" (the training
    crop) or "eval" (the evaluation protocol); by default "train" for the train and all splits,
    "eval" for val and test. CUB: train = 1.5x box crop, eval = ``data.eval_protocol`` (comgan:
    full image resized to 152/128 R and centre-cropped; drc: 1.5x box crop stretched). Stanford
    Dogs / Cars: train = the official images' 1.5x box crops (no masks); eval = DRC's processed
    release with its approximate masks when it is in the dataset folder (and data.use_masks),
    else the same box crops. Extra keyword arguments go to the dataset (e.g. ``crop="full"``).
    Raises DatasetError (one line: which key to set, what to download) when a paper dataset's
    ``data.root`` is unset or missing.
    """
    d = params.data
    if purpose is None:
        purpose = "train" if split in ("train", "all") else "eval"
    if purpose not in ("train", "eval"):
        raise ValueError(f"purpose must be train or eval, got {purpose!r}")
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
            variant=d.variant,
            camouflage=d.camouflage,
            extra_scene_colours=d.extra_scene_colours,
            **kwargs,
        )
    # The generic folder loader also reads CLEVR6 after its converter; class folders share its
    # options. Only the folder kind may skip the catalog's root check (config checked it).
    folder_options = {
        "split": split,
        "holdout_fraction": d.holdout_fraction,
        "seed": d.seed,
        "resize_mode": d.resize_mode,
        "on_bad_file": d.on_bad_file,
        **kwargs,
    }
    if d.kind == "folder":
        from comgan_lib.data.folder import ImageFolderDataset

        return ImageFolderDataset(d.root, d.resolution, **folder_options)

    from comgan_lib.data.catalog import require_root

    root = require_root(params)
    if d.kind == "clevr6":
        from comgan_lib.data.folder import ImageFolderDataset

        return ImageFolderDataset(root, d.resolution, **folder_options)
    if d.kind == "class_folders":
        from comgan_lib.data.class_folders import ClassFolderDataset

        return ClassFolderDataset(root, d.resolution, **folder_options)
    if d.kind == "cub":
        from comgan_lib.data.cub import CUBDataset

        kwargs.setdefault("crop", "box" if purpose == "train" else EVAL_CROPS[d.eval_protocol])
        return CUBDataset(
            root, d.resolution, split, split_scheme=d.split_scheme, use_masks=d.use_masks, **kwargs
        )
    if d.kind == "flowers":
        from comgan_lib.data.flowers import FlowersDataset

        return FlowersDataset(
            root, d.resolution, split, split_scheme=d.split_scheme, use_masks=d.use_masks, **kwargs
        )
    if d.kind in ("stanford_dogs", "stanford_cars"):
        from comgan_lib.data import drc

        if purpose == "eval" and d.use_masks and drc.present(root) and "crop" not in kwargs:
            title = "Stanford Dogs" if d.kind == "stanford_dogs" else "Stanford Cars"
            return drc.DRCProcessedDataset(
                root, d.resolution, split, title=f"{title} (DRC processed release)"
            )
        if d.kind == "stanford_dogs":
            from comgan_lib.data.stanford_dogs import StanfordDogsDataset as cls
        else:
            from comgan_lib.data.stanford_cars import StanfordCarsDataset as cls
        return cls(root, d.resolution, split, **kwargs)
    raise ValueError(f"unknown data.kind {d.kind!r}")


def stack_items(
    dataset: Dataset, limit: int | None = None, batch_size: int = 256, num_workers: int = 0
) -> dict:
    """The first ``limit`` items (all by default) collated into batched tensors, in order;
    ``num_workers`` processes decode them in parallel (folder datasets: JPEG decoding)."""
    import torch
    from torch.utils.data import DataLoader, Subset

    n = len(dataset) if limit is None else min(limit, len(dataset))
    workers = min(num_workers, max(0, -(-n // batch_size)))  # no idle workers
    loader = DataLoader(
        Subset(dataset, range(n)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
    )
    batches = list(loader)
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
