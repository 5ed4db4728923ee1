"""Every network of the course behind one registry.

>>> from course_pkg.models import create, available
>>> model = create("googlenet", num_classes=10)

Each network lives in its own module (``lenet.py``, ``alexnet.py``, ``vgg.py``, ``nin.py``,
``inception.py``, ``googlenet.py``) and registers its builder with :func:`register`.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make a model builder available as ``create(name, **kwargs)``."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = builder
        return builder

    return decorator


def available() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    return sorted(_REGISTRY)


def create(name: str, **kwargs) -> nn.Module:
    """Build the network registered under ``name`` with the given keyword arguments."""
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available models: {', '.join(available())}"
        ) from None
    return builder(**kwargs)


# Importing the modules registers their builders.  Order is the course's order.
from . import lenet, alexnet, vgg, nin, inception, googlenet  # noqa: E402,F401

__all__ = ["create", "available", "register"]
