"""A loader for small data sets kept whole on the device: :class:`GpuLoader`, :func:`get_loaders`.

Images stay resident as uint8 (CIFAR-10's 50,000 training images are 150 MB); each batch is
gathered, augmented (:mod:`course_pkg.data.augment`) and normalised there, so nothing waits for a
worker process or a host-to-device copy.
"""

from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np
import torch

from ..device import pick_device
from .augment import Augment, _resolve_augment, cutout, random_crop, random_flip, random_resized_crop
from .conventions import _stats, prepare
from .sources import load_arrays


def _seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (seed, epoch, stream, rank)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


class GpuLoader:
    """Batches of a small data set kept whole on ``device`` as uint8.

    Yields ``(x, y)``: ``x`` float32 NCHW normalised by the data set's convention (optionally
    channels_last), ``y`` int64. With ``shuffle`` the order is a permutation drawn from
    ``(seed, epoch)``; each iteration moves to the next epoch unless :meth:`set_epoch` sets it, so
    the same seed and epoch give the same batches. Augmentation runs on the device.

    For DistributedDataParallel pass ``rank`` and ``world_size``: every rank draws the same
    permutation and takes its own contiguous slice. With ``even_shards`` (training) all slices
    have the same size — ``len // world_size`` with ``drop_last``, else the permutation wraps
    around to pad the last slice, as ``DistributedSampler`` does; with ``even_shards=False``
    (evaluation) the slices split the data exactly, sizes differing by at most one.
    ``drop_last`` also drops a final incomplete batch.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        batch_size: int = 256,
        shuffle: bool = False,
        augment: bool | Augment | None = False,
        device: str | torch.device | None = None,
        drop_last: bool = False,
        seed: int = 0,
        *,
        dataset: str = "cifar10",
        rank: int = 0,
        world_size: int = 1,
        even_shards: bool = True,
        channels_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.dataset = dataset
        self.device = torch.device(device) if device is not None else pick_device()
        self.images = prepare(images, dataset).to(self.device)
        self.labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor)
                                      else labels).to(self.device, torch.int64)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.augment = _resolve_augment(augment, dataset)
        self.rank, self.world_size, self.even_shards = rank, world_size, even_shards
        self.channels_last = channels_last
        self.epoch = 0
        self._mean, self._std = _stats(dataset, self.device)

    def set_epoch(self, epoch: int) -> None:
        """The next iteration serves ``epoch`` (call before each epoch for reproducible runs)."""
        self.epoch = int(epoch)

    @property
    def num_samples(self) -> int:
        """Images this rank serves per epoch (before dropping an incomplete batch)."""
        n, ws = len(self.labels), self.world_size
        if ws == 1:
            return n
        if self.even_shards:
            return n // ws if self.drop_last else math.ceil(n / ws)
        return (self.rank + 1) * n // ws - self.rank * n // ws

    def __len__(self) -> int:
        m = self.num_samples
        return m // self.batch_size if self.drop_last else math.ceil(m / self.batch_size)

    def indices(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices for ``epoch``, in serving order (on the CPU)."""
        n, ws, r = len(self.labels), self.world_size, self.rank
        if self.shuffle:
            g = torch.Generator().manual_seed(_seed(self.seed, epoch, 0))
            order = torch.randperm(n, generator=g)  # identical on every rank
        else:
            order = torch.arange(n)
        if ws == 1:
            return order
        if not self.even_shards:
            return order[r * n // ws:(r + 1) * n // ws]
        m = self.num_samples
        if m * ws > n:  # wrap around to make every shard the same size
            order = order.repeat(math.ceil(m * ws / n))
        return order[r * m:(r + 1) * m]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        idx = self.indices(epoch).to(self.device)
        gen = None
        if self.augment is not None:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(_seed(self.seed, epoch, 1, self.rank))  # differs per rank
        for b in range(len(self)):
            j = idx[b * self.batch_size:(b + 1) * self.batch_size]
            x, y = self.images[j], self.labels[j]
            if self.augment is not None:
                if self.augment.crop_padding:
                    x = random_crop(x, self.augment.crop_padding, gen, self.augment.padding_mode)
                if self.augment.scale is not None:
                    x = random_resized_crop(x, self.augment.scale, self.augment.ratio, gen)
                if self.augment.flip:
                    x = random_flip(x, gen)
            x = (x.float().div_(255) - self._mean) / self._std
            if self.augment is not None and self.augment.cutout:
                x = cutout(x, self.augment.cutout, gen)
            fmt = torch.channels_last if self.channels_last else torch.contiguous_format
            yield x.contiguous(memory_format=fmt), y

    def __repr__(self) -> str:
        return (f"GpuLoader({self.dataset}, n={len(self.labels)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, augment={self.augment}, device={self.device}, "
                f"rank={self.rank}/{self.world_size})")


def get_loaders(
    name: str,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    augment: bool | Augment = True,
    limit: int | None = None,
    *,
    test_limit: int | None = None,
    test_batch_size: int | None = None,
    seed: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    channels_last: bool = False,
    root: str | os.PathLike | None = None,
    download: bool = True,
) -> tuple[GpuLoader, GpuLoader]:
    """``(train_loader, test_loader)`` for "mnist" or "cifar10", resident on ``device``.

    ``limit`` keeps that many images of the training split, spread evenly (and of the test
    split, unless ``test_limit`` says otherwise). The test loader never shuffles or augments and, under DDP,
    splits the test set exactly between ranks.
    """
    test_limit = limit if test_limit is None else test_limit
    x_train, y_train = load_arrays(name, "train", limit, root=root, download=download)
    x_test, y_test = load_arrays(name, "test", test_limit, root=root, download=download)
    common = dict(device=device, dataset=name, rank=rank, world_size=world_size,
                  channels_last=channels_last)
    train = GpuLoader(x_train, y_train, batch_size, shuffle=True, augment=augment,
                      drop_last=drop_last, seed=seed, **common)
    test = GpuLoader(x_test, y_test, test_batch_size or batch_size, shuffle=False, augment=False,
                     even_shards=False, **common)
    return train, test

