"""Pictures a person looks at: operation sheets and reconstruction sheets (PNG).

Figures are built with matplotlib's object API (`Figure`), which renders with Agg
and touches no global backend or pyplot state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from autoshield.data.cifar import CLASSES
from autoshield.data.ops import apply_op
from autoshield.data.policy import Cell
from autoshield.evaluation.judge import AttackResult
from autoshield.privacy.metrics import psnr


def _show(axis: Axes, image: torch.Tensor, title: str) -> None:
    """Draw a uint8 `[3,H,W]` or float `[3,H,W]` in [0,1] image without ticks."""
    array = image.permute(1, 2, 0).cpu()
    axis.imshow(array.numpy() if array.dtype == torch.uint8 else array.clamp(0, 1).numpy(), interpolation="nearest")
    axis.set_title(title, fontsize=7)
    axis.axis("off")


def ops_sheet(image: torch.Tensor, cells: Sequence[Cell], path: Path, *, columns: int = 10) -> Path:
    """One image under every cell (positive sign), titled 'Op:m', so users see what magnitudes mean."""
    rows = math.ceil((len(cells) + 1) / columns)
    figure = Figure(figsize=(columns * 1.1, rows * 1.25))
    axes = figure.subplots(rows, columns)
    flat = axes.flatten()
    _show(flat[0], image, "original")
    batch = image.unsqueeze(0)
    for axis, cell in zip(flat[1:], cells, strict=False):
        _show(axis, apply_op(batch, cell.op, cell.magnitude)[0], str(cell))
    for axis in flat[len(cells) + 1 :]:
        axis.axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def image_grid_sheet(
    rows: Sequence[tuple[str, Sequence[tuple[str, torch.Tensor]]]], path: Path, *, title: str | None = None
) -> Path:
    """Rows of titled images, e.g. per label: original | transformed | reconstruction."""
    columns = max(len(images) for _, images in rows)
    figure = Figure(figsize=(columns * 1.4, len(rows) * 1.45))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, (row_name, images) in enumerate(rows):
        for c in range(columns):
            axis = axes[r][c]
            if c < len(images):
                name, image = images[c]
                _show(axis, image, f"{row_name}: {name}" if c == 0 else name)
            else:
                axis.axis("off")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def reconstruction_sheet(
    results: AttackResult | Mapping[str, AttackResult], path: Path, *, title: str | None = None
) -> Path:
    """First victim of each label: original | transformed | one reconstruction per attacker, with its PSNR.

    Several results must come from the same victims (the attackers of one policy)."""
    named = {"recon": results} if isinstance(results, AttackResult) else dict(results)
    first = next(iter(named.values()))
    rows = []
    for label, name in enumerate(CLASSES):
        members = torch.nonzero(first.labels == label).flatten()
        if len(members) == 0:
            continue
        i = int(members[0])
        original = first.originals[i : i + 1].float() / 255
        shown = [("original", first.originals[i]), ("transformed", first.transformed[i])]
        for attacker, result in named.items():
            value = psnr(result.reconstructions[i : i + 1], original)[0]
            shown.append((f"{attacker} {float(value):.1f} dB", result.reconstructions[i]))
        rows.append((name, shown))
    return image_grid_sheet(rows, path, title=title)


def landscape_sheet(result: AttackResult, path: Path, *, title: str | None = None) -> Path:
    """Three rows (original, transformed, reconstruction) of one victim per label: wide, so that a dashboard's
    artifact thumbnail, which fits the page's width, stays legible (the portrait sheet becomes 43 px wide)."""
    first = [int(torch.nonzero(result.labels == label).flatten()[0]) for label in range(len(CLASSES))
             if (result.labels == label).any()]  # fmt: skip
    rows = [
        (kind, [(CLASSES[int(result.labels[i])], images[i]) for i in first])
        for kind, images in (
            ("original", result.originals),
            ("transformed", result.transformed),
            ("reconstruction", result.reconstructions),
        )
    ]
    return image_grid_sheet(rows, path, title=title)
