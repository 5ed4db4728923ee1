"""The model registry: one name per network builder, ``create(name, **kwargs)`` for all of them.

Each network module registers its builders with :func:`register`; :mod:`course_pkg.models`
imports every network module, so that ``create`` knows them all.
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
