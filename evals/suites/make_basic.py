"""Build `basic.jsonl` and its images/masks from pictures that ship with scikit-image.

Run `python -m evals.suites.make_basic` (needs `scikit-image`) to regenerate; the outputs are
committed, so evaluating never needs scikit-image. Masks are hand-placed polygons and ellipses in
the coordinates of the 256-px thumbnails (255 = the region the edit should touch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIDE = 256

Shape = tuple[str, list[float]]  # ("ellipse", [x0, y0, x1, y1]) or ("polygon", [x, y, x, y, ...])

IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "camera")

_MAN = [0, 110, 30, 80, 80, 65, 85, 40, 110, 32, 135, 50, 165, 75, 165, 110, 140, 125]
_MAN += [110, 125, 80, 256, 0, 256]

ITEMS: list[dict] = [
    {
        "id": "astronaut-helmet",
        "image": "astronaut",
        "instruction": "remove the helmet",
        "category": "removal",
        "object": "helmet",
        "target_caption": "an astronaut in an orange suit in front of a flag",
        "shapes": [("ellipse", [138, 165, 256, 256])],
    },
    {
        "id": "astronaut-flag",
        "image": "astronaut",
        "instruction": "remove the flag",
        "category": "removal",
        "object": "flag",
        "target_caption": "an astronaut in an orange suit against a plain wall",
        "shapes": [("polygon", [0, 0, 50, 0, 50, 100, 38, 200, 20, 256, 0, 256])],
    },
    {
        "id": "astronaut-hair",
        "image": "astronaut",
        "instruction": "make the hair blonde",
        "category": "local",
        "object": "hair",
        "target_caption": "blonde hair",
        "shapes": [("ellipse", [96, 2, 150, 42])],
    },
    {
        "id": "astronaut-patch",
        "image": "astronaut",
        "instruction": "change the patch to a red star",
        "category": "local",
        "object": "patch",
        "target_caption": "a red star patch",
        "shapes": [("ellipse", [64, 176, 112, 212])],
    },
    {
        "id": "chelsea-eyes",
        "image": "chelsea",
        "instruction": "make the eyes blue",
        "category": "local",
        "object": "eyes",
        "target_caption": "blue cat eyes",
        "shapes": [("ellipse", [76, 50, 120, 84]), ("ellipse", [162, 62, 196, 92])],
    },
    {
        "id": "chelsea-nose",
        "image": "chelsea",
        "instruction": "remove the nose",
        "category": "removal",
        "object": "nose",
        "target_caption": "cat fur",
        "shapes": [("ellipse", [130, 124, 166, 150])],
    },
    {
        "id": "coffee-spoon",
        "image": "coffee",
        "instruction": "remove the spoon",
        "category": "removal",
        "object": "spoon",
        "target_caption": "a red saucer with a cup of coffee",
        "shapes": [("ellipse", [133, 98, 166, 140])],
    },
    {
        "id": "coffee-tea",
        "image": "coffee",
        "instruction": "turn the coffee into tea",
        "category": "local",
        "object": "coffee",
        "target_caption": "a cup of green tea",
        "shapes": [("ellipse", [88, 42, 172, 86])],
    },
    {
        "id": "coffee-cookie",
        "image": "coffee",
        "instruction": "add a cookie on the saucer",
        "category": "addition",
        "object": "cookie",
        "target_caption": "a cookie on a red saucer",
        "shapes": [("ellipse", [40, 112, 90, 150])],
    },
    {
        "id": "rocket-rocket",
        "image": "rocket",
        "instruction": "erase the rocket",
        "category": "removal",
        "object": "rocket",
        "target_caption": "an empty launch pad at dusk",
        "shapes": [("polygon", [118, 48, 138, 48, 138, 160, 118, 160])],
    },
    {
        "id": "rocket-tower",
        "image": "rocket",
        "instruction": "remove the tower on the left",
        "category": "removal",
        "object": "tower",
        "target_caption": "a dusk sky over a launch pad",
        "shapes": [("polygon", [0, 0, 36, 0, 36, 171, 0, 171])],
    },
    {
        "id": "rocket-winter",
        "image": "rocket",
        "instruction": "make it look like winter",
        "category": "global",
        "object": None,
        "target_caption": "a rocket on a snowy launch pad in winter",
        "shapes": [("polygon", [0, 0, 256, 0, 256, 171, 0, 171])],
    },
    {
        "id": "camera-tripod",
        "image": "camera",
        "instruction": "remove the tripod",
        "category": "removal",
        "object": "tripod",
        "target_caption": "a man holding a camera on a grass field",
        "shapes": [("polygon", [132, 100, 160, 100, 205, 256, 108, 256])],
    },
    {
        "id": "camera-background",
        "image": "camera",
        "instruction": "change the background to a beach",
        "category": "background",
        "object": "man",
        "target_caption": "a sandy beach with the sea",
        "shapes": [("invert-polygon", _MAN)],
    },
]


def load_source(name: str) -> Image.Image:
    """A scikit-image sample picture as an RGB thumbnail no larger than 256 px."""
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    image.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    return image


def draw_mask(size: tuple[int, int], shapes: list[Shape]) -> Image.Image:
    """A binary L image (255 = edit) with every shape filled in."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for kind, coords in shapes:
        if kind == "ellipse":
            draw.ellipse(coords, fill=255)
        elif kind == "polygon":
            draw.polygon(coords, fill=255)
        elif kind == "invert-polygon":
            inner = Image.new("L", size, 0)
            ImageDraw.Draw(inner).polygon(coords, fill=255)
            inverted = 255 - np.asarray(inner)
            mask = Image.fromarray(np.maximum(np.asarray(mask), inverted).astype(np.uint8))
            draw = ImageDraw.Draw(mask)
        else:
            raise ValueError(f"unknown shape kind {kind!r}")
    return mask


def build(out_dir: Path = HERE) -> Path:
    """Write images, masks and the JSONL; returns the suite path."""
    folder = out_dir / "basic"
    folder.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, tuple[int, int]] = {}
    for name in IMAGES:
        image = load_source(name)
        sizes[name] = image.size
        image.save(folder / f"{name}.png", optimize=True)
    lines = []
    for item in ITEMS:
        mask = draw_mask(sizes[item["image"]], item["shapes"])
        mask_name = f"{item['id']}.mask.png"
        mask.save(folder / mask_name, optimize=True)
        record = {
            "id": item["id"],
            "image": f"basic/{item['image']}.png",
            "instruction": item["instruction"],
            "category": item["category"],
            "object": item["object"],
            "mask": f"basic/{mask_name}",
            "target_caption": item["target_caption"],
        }
        lines.append(json.dumps(record))
    suite = out_dir / "basic.jsonl"
    suite.write_text("\n".join(lines) + "\n")
    return suite


if __name__ == "__main__":
    print(build())
