"""Is one classifier better than another on the same test images?  Paired differences.

Two networks (or two test protocols) scored on the *same* images make a paired comparison: what
differs between them is only the images one gets right and the other wrong (the discordant
images).  The interval for independent samples, ``sqrt(p (1 - p) / n)`` for each accuracy, ignores
that pairing: it is far too wide for two networks that agree on most images, and it says nothing
about how much another training seed would move either of them.

- :func:`paired_difference`   the difference of two accuracies with its 95% interval (the normal
                              approximation for paired proportions) and McNemar's exact test
- :func:`bootstrap_difference`  the same interval by resampling the images (percentile bootstrap)
- :func:`correct_bits`, :func:`from_bits`   a per-image right/wrong vector as a short string, so a
                              results file can carry it and a later comparison can pair with it

McNemar, "Note on the sampling error of the difference between correlated proportions or
percentages", Psychometrika 12 (1947); the interval for a difference of paired proportions is the
Wald interval of Agresti, *Categorical Data Analysis*, section 10.1.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import torch

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def _as_bool(correct: Any) -> torch.Tensor:
    t = torch.as_tensor(correct).reshape(-1)
    if t.dtype != torch.bool:
        if not torch.isin(t, torch.tensor([0, 1], dtype=t.dtype)).all():
            raise ValueError("a per-image result is right (1 / True) or wrong (0 / False)")
        t = t.bool()
    return t


def _pair(correct_a: Any, correct_b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _as_bool(correct_a), _as_bool(correct_b)
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"a paired comparison needs the same images on both sides: got {a.numel()} and "
                         f"{b.numel()} results")
    return a, b


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the chance of a split of the discordant images at least as
    uneven as ``only_a`` : ``only_b`` if either network were as likely to be the one that is right."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    log_half = n * math.log(0.5)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
               for i in range(k + 1))
    return min(1.0, 2 * tail)


def paired_difference(correct_a: Any, correct_b: Any, z: float = Z95) -> dict[str, Any]:
    """``accuracy(b) - accuracy(a)`` on the same images, with its interval and McNemar's test.

    ``correct_a``, ``correct_b``: one right/wrong value per image, in the same image order.  The
    interval is ``d ± z * se`` with ``se = sqrt(only_a + only_b - (only_b - only_a)^2 / n) / n``;
    ``real`` says whether it excludes 0."""
    a, b = _pair(correct_a, correct_b)
    n = a.numel()
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    diff = (only_b - only_a) / n
    se = math.sqrt(max(only_a + only_b - (only_b - only_a) ** 2 / n, 0.0)) / n
    low, high = diff - z * se, diff + z * se
    real = low > 0 or high < 0
    return {"n": n, "accuracy_a": float(a.float().mean()), "accuracy_b": float(b.float().mean()),
            "difference": diff, "low": low, "high": high, "only_a": only_a, "only_b": only_b,
            "mcnemar_p": mcnemar_p(only_a, only_b), "real": real, "reading": _reading(diff, low, high, real)}


def _reading(diff: float, low: float, high: float, real: bool) -> str:
    span = f"{100 * diff:+.2f} points (95% interval {100 * low:+.2f} to {100 * high:+.2f})"
    if not real:
        return f"{span}: no difference shown on these images"
    return f"{span}: {'higher' if diff > 0 else 'lower'} on these images"


def bootstrap_difference(correct_a: Any, correct_b: Any, resamples: int = 10_000, seed: int = 0,
                         confidence: float = 0.95, chunk: int = 500) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``accuracy(b) - accuracy(a)``: the images resampled with
    replacement ``resamples`` times (the same draw for both sides, which keeps the pairing)."""
    a, b = _pair(correct_a, correct_b)
    per_image = b.float() - a.float()
    n = per_image.numel()
    g = torch.Generator().manual_seed(seed)
    means = []
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        means.append(per_image[torch.randint(0, n, (rows, n), generator=g)].mean(1))
    means = torch.cat(means).double()
    tail = (1 - confidence) / 2
    return float(torch.quantile(means, tail)), float(torch.quantile(means, 1 - tail))


def correct_bits(correct: Any) -> str:
    """A right/wrong vector as base64 of its packed bits (10,000 images: 1,668 characters)."""
    t = _as_bool(correct)
    padded = torch.cat([t, torch.zeros((-t.numel()) % 8, dtype=torch.bool)]).reshape(-1, 8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.int32)
    packed = (padded.int() * weights).sum(1).to(torch.uint8)
    return base64.b64encode(bytes(packed.tolist())).decode("ascii")


def from_bits(text: str, n: int) -> torch.Tensor:
    """The inverse of :func:`correct_bits` for ``n`` images."""
    raw = torch.tensor(list(base64.b64decode(text)), dtype=torch.int32)
    if raw.numel() * 8 < n:
        raise ValueError(f"the stored results hold {raw.numel() * 8} images, not {n}")
    bits = (raw[:, None] >> torch.arange(7, -1, -1)) & 1
    return bits.reshape(-1)[:n].bool()

