"""Pictures a person looks at: operation sheets and reconstruction sheets (PNG).

Sheets are drawn with Pillow: the images pasted at a whole-number scale (nearest neighbour, so each pixel of a
32-px image stays a visible square) under one caption each. A grid trial writes two sheets per attacker, and
matplotlib took about 1.3 s a sheet (60 axes, a layout pass, then the render): more than a `smoke` trial's attack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from autoshield.core.files import atomic_path
from autoshield.data.cifar import CLASSES
from autoshield.data.ops import apply_op
from autoshield.data.policy import Cell
from autoshield.evaluation.judge import AttackResult
from autoshield.privacy.metrics import psnr

SCALE = 3  # a 32-px image drawn 96 px wide
PAD = 8  # pixels between cells and around the sheet
FONT = ImageFont.load_default(size=11)
TITLE_FONT = ImageFont.load_default(size=14)
BLANK = (225, 225, 225)  # where a cell has no image to show: a non-finite reconstruction, or one not kept


def _pixels(image: torch.Tensor) -> Image.Image:
    """A uint8 `[3,H,W]` or float `[3,H,W]` image in [0,1], scaled up; a non-finite one as a blank square."""
    height, width = image.shape[-2:]
    size = (width * SCALE, height * SCALE)
    if image.dtype != torch.uint8:
        if not torch.isfinite(image).all():
            return Image.new("RGB", size, BLANK)
        image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    picture = Image.fromarray(image.permute(1, 2, 0).contiguous().cpu().numpy(), mode="RGB")
    return picture.resize(size, Image.Resampling.NEAREST)


def _caption(row_name: str, column: int, name: str) -> str:
    return f"{row_name}: {name}" if column == 0 and row_name else name


def image_grid_sheet(
    rows: Sequence[tuple[str, Sequence[tuple[str, torch.Tensor]]]], path: Path, *, title: str | None = None
) -> Path:
    """Rows of captioned images, e.g. per label: original | transformed | reconstruction."""
    cells = [
        [(_caption(row_name, c, name), _pixels(image)) for c, (name, image) in enumerate(images)]
        for row_name, images in rows
    ]
    line = FONT.getbbox("Ag")[3] + 3
    columns = max(len(row) for row in cells)
    widths = [0] * columns
    for row in cells:
        for c, (caption, picture) in enumerate(row):
            widths[c] = max(widths[c], picture.width, math.ceil(FONT.getlength(caption)))
    heights = [line + max(picture.height for _, picture in row) for row in cells]
    top = PAD + (TITLE_FONT.getbbox(title)[3] + PAD if title else 0)
    sheet = Image.new("RGB", (sum(widths) + PAD * (columns + 1), top + sum(heights) + PAD * len(cells)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((sheet.width // 2, PAD), title, fill="black", font=TITLE_FONT, anchor="ma")
    y = top
    for row, height in zip(cells, heights, strict=True):
        x = PAD
        for (caption, picture), width in zip(row, widths, strict=False):
            draw.text((x + width // 2, y), caption, fill="black", font=FONT, anchor="ma")
            sheet.paste(picture, (x + (width - picture.width) // 2, y + line))
            x += width + PAD
        y += height + PAD
    with atomic_path(path) as partial:
        sheet.save(partial, format="PNG")
    return path


def ops_sheet(image: torch.Tensor, cells: Sequence[Cell], path: Path, *, columns: int = 10) -> Path:
    """One image under every cell (positive sign), captioned 'Op:m', so users see what magnitudes mean."""
    batch = image.unsqueeze(0)
    shown = [("original", image), *((str(cell), apply_op(batch, cell.op, cell.magnitude)[0]) for cell in cells)]
    rows = [shown[i : i + columns] for i in range(0, len(shown), columns)]
    return image_grid_sheet([("", row) for row in rows], path)


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
            value = float(psnr(result.reconstructions[i : i + 1], original)[0])  # NaN: none (failed, or not kept)
            caption = f"{attacker} {value:.1f} dB" if math.isfinite(value) else f"{attacker}: no image"
            shown.append((caption, result.reconstructions[i]))
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
