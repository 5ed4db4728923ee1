"""ImageFolder data sets (Imagenette, ImageNet) for the 224x224 GoogLeNet.

Ordinary ``torch.utils.data.DataLoader`` s over ``root/train/<class>/*`` and ``root/val/<class>/*``,
with the paper's training crops (section 6) and the usual single-view evaluation.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .sources import DataNotFoundError

# torchvision's ImageNet statistics (the paper only subtracts a mean; these are the usual choice
# and match torchvision's pretrained models).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagefolder_train_transform(size: int = 224, min_area: float = 0.08, jitter: float = 0.4):
    """GoogLeNet's training crops (paper section 6): patches of 8%-100% of the image area with
    aspect ratio in [3/4, 4/3], resized to ``size``; horizontal flips; photometric distortions
    (brightness/contrast/saturation jitter — the paper cites Howard 2013 without numbers)."""
    from torchvision import transforms as T

    return T.Compose([
        T.RandomResizedCrop(size, scale=(min_area, 1.0), ratio=(3 / 4, 4 / 3)),
        T.RandomHorizontalFlip(),
        T.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def imagefolder_eval_transform(size: int = 224, resize: int = 256):
    """Single-view evaluation: shorter side to ``resize``, centre ``size x size`` crop."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def imagefolder_loaders(
    root: str | os.PathLike,
    batch_size: int = 64,
    workers: int = 4,
    *,
    size: int = 224,
    resize: int = 256,
    train_dir: str = "train",
    val_dir: str = "val",
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool | None = None,
):
    """``(train_loader, val_loader)`` — ordinary DataLoaders over ``root/train/<class>/*`` and
    ``root/val/<class>/*`` (the Imagenette layout; ImageNet's validation images must be sorted
    into class folders first). With ``world_size > 1`` both use a ``DistributedSampler``: call
    ``train_loader.sampler.set_epoch(epoch)`` every epoch."""
    from torch.utils.data import DataLoader, DistributedSampler
    from torchvision.datasets import ImageFolder

    root = Path(root).expanduser()
    folders = {}
    for split, sub in (("train", train_dir), ("val", val_dir)):
        folder = root / sub
        if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
            raise DataNotFoundError(
                f"no {split} images at {folder}: expected {root}/{train_dir}/<class>/<image> and "
                f"{root}/{val_dir}/<class>/<image> (e.g. Imagenette from "
                "https://github.com/fastai/imagenette, unpacked).")
        folders[split] = folder
    train_set = ImageFolder(str(folders["train"]), imagefolder_train_transform(size))
    val_set = ImageFolder(str(folders["val"]), imagefolder_eval_transform(size, resize))
    if train_set.classes != val_set.classes:
        raise ValueError(f"{folders['train']} and {folders['val']} have different class folders: "
                         f"{sorted(set(train_set.classes) ^ set(val_set.classes))}")
    pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
    common = dict(batch_size=batch_size, num_workers=workers, pin_memory=pin_memory,
                  persistent_workers=workers > 0)
    if world_size > 1:
        train_sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, seed=seed,
                                           drop_last=True)
        val_sampler = DistributedSampler(val_set, world_size, rank, shuffle=False)
        train = DataLoader(train_set, sampler=train_sampler, drop_last=True, **common)
        val = DataLoader(val_set, sampler=val_sampler, **common)
    else:
        g = torch.Generator().manual_seed(seed)
        train = DataLoader(train_set, shuffle=True, generator=g, drop_last=True, **common)
        val = DataLoader(val_set, shuffle=False, **common)
    return train, val

