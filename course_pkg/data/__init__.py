"""Data for the course: MNIST, CIFAR-10 and ImageFolder data sets (Imagenette, ImageNet).

One module per job:

- :mod:`~course_pkg.data.conventions`  one preprocessing convention per data set (padding, mean,
                                       std) and the one path uint8 images -> network inputs
- :mod:`~course_pkg.data.sources`      where the data come from (``$COURSE_DATA``, ``root``,
                                       torchvision) and the decoded-JPEG cache of CIFAR-10
- :mod:`~course_pkg.data.augment`      crop, random-resized crop, flip and cutout as batched tensor
                                       operations
- :mod:`~course_pkg.data.loader`       :class:`GpuLoader`: a small data set resident on the device
- :mod:`~course_pkg.data.imagefolder`  DataLoaders for ImageFolder data sets at 224x224

Everything is importable from here: ``from course_pkg.data import get_loaders, to_tensor``.
"""

from ..device import pick_device
from .augment import (DEFAULT_AUGMENT, PAPER_RATIO, PAPER_SCALE, Augment, cutout, random_crop, random_flip,
                      random_resized_crop, resized_crop_boxes)
from .conventions import (CIFAR10_CLASSES, CONVENTIONS, Convention, class_names, convention,
                          denormalize, normalize, prepare, to_tensor)
from .imagefolder import (IMAGENET_MEAN, IMAGENET_STD, imagefolder_eval_transform,
                          imagefolder_loaders, imagefolder_train_transform)
from .loader import GpuLoader, get_loaders
from .sources import (CACHE_ENV, CACHE_FORMAT, DATA_ENV, DEFAULT_ROOT, OFFLINE_FILES, SPLIT_SIZES,
                      SPLITS, CorruptDataError, DataNotFoundError, cache_folder, data_source,
                      decode_jpegs, load_arrays, subset_indices)


def default_device():
    """This process's GPU if any, else the CPU (:func:`course_pkg.device.pick_device`)."""
    return pick_device()


__all__ = [
    "Augment", "CACHE_ENV", "CACHE_FORMAT", "CIFAR10_CLASSES", "CONVENTIONS", "Convention", "CorruptDataError",
    "DATA_ENV", "DEFAULT_AUGMENT", "DEFAULT_ROOT", "DataNotFoundError", "GpuLoader", "IMAGENET_MEAN", "IMAGENET_STD",
    "OFFLINE_FILES", "PAPER_RATIO", "PAPER_SCALE", "SPLITS", "SPLIT_SIZES", "cache_folder", "class_names",
    "convention", "cutout", "data_source", "decode_jpegs", "default_device", "denormalize", "get_loaders",
    "imagefolder_eval_transform", "imagefolder_loaders", "imagefolder_train_transform", "load_arrays", "normalize",
    "prepare", "random_crop", "random_flip", "random_resized_crop", "resized_crop_boxes", "subset_indices",
    "to_tensor",
]
