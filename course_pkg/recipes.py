"""One training recipe per data set: every hyperparameter of a run, in one typed object.

A :class:`Recipe` has a loader part (batch size, augmentation) and a :func:`~course_pkg.train.fit`
part (epochs, optimizer, schedule, loss, precision).  Everything that trains uses the recipe of its
data set and says, in its own code, what it changes:

>>> from course_pkg.recipes import CIFAR10
>>> faithful = CIFAR10.replace(epochs=12, lr=0.05)        # what differs is written where it differs
>>> train_loader, test_loader = get_loaders(**faithful.loader_kwargs(), device=device)  # doctest: +SKIP
>>> history = fit(model, train_loader, val_loader=test_loader, **faithful.fit_kwargs())  # doctest: +SKIP

Users: ``course train`` (each flag replaces one field), ``benchmarks/reference_cpu.py``, chapters 2
and 7, assignment 3's training cell.

Each value carries a tag.  "measured": the value was part of the run recorded in the results file
named beside it (the recipe as a whole was measured; no value was ablated alone unless the tag says
so).  "guessed": a conventional value nobody has measured here yet.  Change a value, rerun the run
that the tag names, and update the tag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .models.googlenet import AUX_LOSS_WEIGHT  # the paper's 0.3 per auxiliary head (section 5)

# The fields that go to the data loaders; every other field except ``dataset`` goes to fit().
LOADER_FIELDS = ("batch_size", "augment", "cutout", "scale")


@dataclass(frozen=True)
class Recipe:
    """How one data set is trained.  Immutable: derive a variant with :meth:`replace`."""

    dataset: str
    # the loader part
    batch_size: int
    augment: bool = True            # the data set's default augmentation (course_pkg.data.DEFAULT_AUGMENT)
    cutout: int = 0                 # side of a square blanked per training image; 0 = off
    scale: tuple[float, float] | None = None  # random-resized crop of this area range instead of the
                                    # data set's padded crop (the paper's scale augmentation); None = off
    # the fit() part
    epochs: int = 1
    optimizer: str = "sgd"
    lr: float = 0.1                 # the peak of the schedule
    momentum: float = 0.9           # the paper's value (section 6)
    nesterov: bool = True
    weight_decay: float = 5e-4      # not applied to biases and BN parameters
    schedule: str = "onecycle"
    warmup: float = 0.2             # fraction of the steps spent warming up
    label_smoothing: float = 0.0
    aux_weight: float = 0.0         # weight of each auxiliary head's loss (GoogLeNet only)
    precision: str = "auto"         # course_pkg.device.pick_precision: bf16 where it pays, fp16 on older GPUs
    channels_last: bool | None = None  # None: course_pkg.device.default_channels_last
    compile: bool | str = False
    measured_in: str = ""           # the results file (path in this repository) of the run that measured it

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"a recipe needs epochs >= 1 and batch_size >= 1, got {self.epochs} and {self.batch_size}")
        if self.cutout and not self.augment:
            raise ValueError("cutout is an augmentation: it needs augment=True")
        if self.scale is not None:
            if not self.augment:
                raise ValueError("scale is an augmentation: it needs augment=True")
            object.__setattr__(self, "scale", tuple(float(v) for v in self.scale))
            self._augment()  # the range is checked there

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with ``changes`` (field names as keywords); an unknown name is a TypeError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"Recipe has no field {', '.join(unknown)}; fields: {', '.join(self.as_dict())}")
        return dataclasses.replace(self, **changes)

    def loader_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`course_pkg.data.get_loaders`: the data set, batch size, augmentation."""
        return {"name": self.dataset, "batch_size": self.batch_size, "augment": self._augment()}

    def _augment(self) -> Any:
        """``augment`` as :func:`course_pkg.data.get_loaders` takes it: True / False, or an
        ``Augment`` when cutout or the random-resized crop changes the data set's default."""
        if not self.augment or not (self.cutout or self.scale):
            return self.augment
        from .data import DEFAULT_AUGMENT

        changes: dict[str, Any] = {"cutout": int(self.cutout)}
        if self.scale:
            changes.update(scale=self.scale, crop_padding=0)
        return dataclasses.replace(DEFAULT_AUGMENT[self.dataset], **changes)

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`course_pkg.train.fit`: everything but the data set and the loader part."""
        skip = {"dataset", "measured_in", *LOADER_FIELDS}
        return {k: v for k, v in self.as_dict().items() if k not in skip}

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# CIFAR-10: the recipe of the course's reference run of the BN GoogLeNet on a 2-core CPU
# (benchmarks/reference_cpu.py bn -> 89.39% on the full test split in 16 epochs).
CIFAR10 = Recipe(
    dataset="cifar10",
    epochs=16,             # measured: benchmarks/results/reference_bn.json (89.39%; the curve is still rising)
    batch_size=128,        # measured: same file; on the 2-core CPU as fast per image as 256 or 512
    augment=True,          # measured: padded random crop + flip, same file
    cutout=0,              # guessed: off
    scale=None,            # measured: the padded crop instead, same file
    optimizer="sgd",       # measured: SGD + Nesterov, same file
    lr=0.1,                # measured: the peak of the one-cycle schedule, same file
    momentum=0.9,          # measured: same file (the paper's value)
    nesterov=True,         # measured: same file
    weight_decay=5e-4,     # measured: same file
    schedule="onecycle",   # measured: same file
    warmup=0.2,            # measured: same file
    label_smoothing=0.1,   # measured: same file
    aux_weight=AUX_LOSS_WEIGHT,  # measured: same file (the paper's 0.3, section 5)
    precision="auto",      # measured: auto chose bf16 on the Xeon with AMX, same file; it takes fp32
                           # where bf16 is slower (cpu_speed_no_amx.json); accuracy of bf16 against
                           # fp32: benchmarks/results/cpu_precision.json
    channels_last=True,    # measured: same file; the speed-up is in benchmarks/results/cpu_speed.json
    compile=False,         # guessed: not measured on the CPU
    measured_in="benchmarks/results/reference_bn.json",
)

# MNIST: LeNet-5 on the CPU (benchmarks/train_lenet.py --publish -> 99.29% in 4 epochs).
MNIST = Recipe(
    dataset="mnist",
    epochs=4,              # measured: course_pkg/pretrained/lenet5_mnist.json (99.29% on the test split)
    batch_size=128,        # measured: same file
    augment=False,         # measured: same file (no augmentation needed for 99%)
    cutout=0,
    scale=None,            # measured: same file (no augmentation)
    optimizer="sgd",       # measured: same file
    lr=0.1,                # measured: same file
    momentum=0.9,          # measured: same file
    nesterov=True,         # measured: same file
    weight_decay=5e-4,     # measured: same file
    schedule="onecycle",   # measured: same file
    warmup=0.2,            # measured: same file
    label_smoothing=0.0,   # measured: same file
    aux_weight=0.0,        # LeNet has no auxiliary heads
    precision="auto",      # measured: fp32 on the CPU, same file
    channels_last=False,   # measured: same file (no gain for a network this small)
    compile=False,         # guessed
    measured_in="course_pkg/pretrained/lenet5_mnist.json",
)

# The scale-augmented variant for CIFAR-10 (the paper's random-resized crop, section 6, at the
# area range 32-pixel images allow): objects seen at many sizes in training, so that the larger test
# scales of a multi-crop evaluation lie inside what the network saw.
CIFAR10_SCALE = CIFAR10.replace(
    # measured as a fine-tune, not as this 16-epoch recipe: run bn's weights, 6 epochs at peak 0.05 on
    # this range, three seeds: 87.10 / 87.22 / 87.30% on the full test split
    # (benchmarks/results/reference_bn_scale_ft.json, reference_bn_scale_ft_s1.json, _s2.json); the
    # paper's 8% would leave about 9x9 pixels of a 32x32 image, a quarter keeps 16x16
    scale=(0.25, 1.0),
    measured_in="",        # the recipe as a whole is not run yet: its run would name its results file here
)

RECIPES: dict[str, Recipe] = {"cifar10": CIFAR10, "mnist": MNIST}

