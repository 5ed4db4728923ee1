"""A student's multi-crop views compared with the protocol's, view by view (assignment 4)."""

from __future__ import annotations

from typing import Any

import torch

from ..multicrop import view_order
from .feedback import Finding


# The protocol's names (course_pkg.multicrop.POSITIONS_144) as a sentence says them.
_WORDS = {"top_left": "top-left", "top_right": "top-right", "bottom_left": "bottom-left",
          "bottom_right": "bottom-right", "center": "centre", "whole": "whole square"}


def describe_view(index: int, scheme: str) -> str:
    """Where view ``index`` comes from in the protocol's order (:func:`course_pkg.multicrop.view_order`),
    in words."""
    if scheme == "ten":
        _, _, position, mirror = view_order(scheme)[index]
        return f"{_WORDS[position]} crop{' of the mirrored image' if mirror else ''}"
    if scheme == "googlenet144":
        scale, square, position, mirror = view_order(scheme, n_scales=index // 36 + 1)[index]
        return f"scale {scale + 1}, square {square + 1} of 3, {_WORDS[position]}{', mirrored' if mirror else ''}"
    return f"view {index}"


def diagnose_views(mine: Any, reference: torch.Tensor, scheme: str, atol: float = 1e-4,
                   limit: int = 4) -> list[Finding]:
    """Compare a student's views ``[V, C, crop, crop]`` with the reference views, view by view.

    Names the views that differ and, when a view equals another one of the protocol, says which
    (a wrong order), e.g. "your view 5 is the top-left crop of the mirrored image".
    """
    where = f"{scheme} views"
    if not isinstance(mine, torch.Tensor):
        return [Finding(where, "value", f"expected a tensor [V, C, crop, crop], got {type(mine).__name__}")]
    if mine.ndim != 4 or mine.shape[1:] != reference.shape[1:]:
        return [Finding(where, "shape", f"shape {tuple(mine.shape)}, expected {tuple(reference.shape)} "
                                        "(views, channels, crop, crop)")]
    if mine.shape[0] != reference.shape[0]:
        why = ("5 positions x 2 (mirror)" if scheme == "ten" else
               "scales x 3 squares x 6 crops (4 corners, centre, whole square) x 2 (mirror)")
        return [Finding(where, "shape", f"{mine.shape[0]} views, expected {reference.shape[0]}: {why}")]
    mine = mine.to(reference.dtype)
    same = [bool(torch.allclose(mine[v], reference[v], atol=atol)) for v in range(len(reference))]
    wrong = [v for v, ok in enumerate(same) if not ok]
    findings = []
    for v in wrong[:limit]:
        match = next((j for j in range(len(reference)) if torch.allclose(mine[v], reference[j], atol=atol)), None)
        if match is not None:
            text = (f"your view {v} is the {describe_view(match, scheme)}; view {v} should be the "
                    f"{describe_view(v, scheme)} (check the order)")
        else:
            err = (mine[v] - reference[v]).abs().max().item()
            text = (f"view {v} ({describe_view(v, scheme)}) differs from the protocol's by up to {err:.3g} "
                    "and matches no other view: check the resize (bilinear, antialias=True), the sizes "
                    "(int(s * long / short)) and the centre offset (int(round((L - c) / 2)))")
        findings.append(Finding(where, "value", text))
    if len(wrong) > limit:
        findings.append(Finding(where, "value", f"... {len(wrong)} of {len(reference)} views differ in all"))
    return findings
