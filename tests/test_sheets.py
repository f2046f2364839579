"""Sheets show the pixels themselves: each image at a whole-number scale, and a blank where there is none."""

from __future__ import annotations

import torch
from PIL import Image

from autoshield.evaluation.sheets import BLANK, PAD, SCALE, image_grid_sheet


def test_a_sheet_pastes_each_pixel_as_a_square_and_blanks_a_missing_reconstruction(tmp_path):
    image = (torch.arange(3 * 32 * 32) % 251).reshape(3, 32, 32).to(torch.uint8)
    missing = torch.full((3, 32, 32), float("nan"))
    path = image_grid_sheet([("cat", [("original", image), ("naive: no image", missing)])], tmp_path / "s.png")
    with Image.open(path) as sheet:
        pixels = sheet.convert("RGB")
        width, height = pixels.size
        assert width >= 2 * 32 * SCALE + 3 * PAD and height > 32 * SCALE + 2 * PAD
        # the first image's top-left pixel sits below the caption, left-aligned in its column; find it by its colour
        expected = tuple(int(v) for v in image[:, 0, 0])
        found = [(x, y) for y in range(height) for x in range(PAD, PAD + 8) if pixels.getpixel((x, y)) == expected]
        x, y = found[0]
        for dy in range(SCALE):  # nearest-neighbour: one source pixel is a SCALE x SCALE square
            for dx in range(SCALE):
                assert pixels.getpixel((x + dx, y + dy)) == expected
        assert pixels.getpixel((x + SCALE, y)) == tuple(int(v) for v in image[:, 0, 1])
        blank = (width - PAD - 16 * SCALE, y + 16 * SCALE)  # the middle of the second column's square
        assert pixels.getpixel(blank) == BLANK
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed into place
