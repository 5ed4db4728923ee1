"""Every network of the course behind one registry.

>>> from course_pkg.models import create, available
>>> model = create("googlenet", num_classes=10)

Each network lives in its own module (``lenet.py``, ``alexnet.py``, ``vgg.py``, ``nin.py``,
``inception.py``, ``googlenet.py``) and registers its builder with
:func:`~course_pkg.models.registry.register`; importing this package imports them all.
"""

from __future__ import annotations

# Importing the modules registers their builders.  Order is the course's order.
from . import alexnet, googlenet, inception, lenet, nin, vgg  # noqa: F401
from .registry import available, create, register

__all__ = ["create", "available", "register"]
