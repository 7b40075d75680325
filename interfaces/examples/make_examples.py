"""Regenerate the bundled demo images and their hand-drawn masks (run once; outputs committed).

    python interfaces/examples/make_examples.py

Photos come from scikit-image's public-domain sample data; each mask is drawn here from a few
shapes (white = the object to remove), then slightly dilated so removals leave no outline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).parent


def _mask(size: tuple[int, int], draw_shapes) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw_shapes(ImageDraw.Draw(mask))
    mask = mask.filter(ImageFilter.MaxFilter(9))  # ~4 px dilation
    return mask.point(lambda v: 255 if v >= 128 else 0)


def coffee() -> dict:
    from skimage import data

    image = Image.fromarray(data.coffee())  # 600x400

    def spoon(draw: ImageDraw.ImageDraw) -> None:
        draw.ellipse((322, 238, 408, 328), fill=255)  # bowl
        draw.polygon([(398, 66), (424, 70), (412, 140), (396, 215), (386, 262), (366, 258),
                      (378, 205), (392, 130)], fill=255)  # handle

    image.save(HERE / "coffee.jpg", quality=88)
    _mask(image.size, spoon).save(HERE / "coffee_spoon_mask.png", optimize=True)
    return {"name": "coffee", "image": "coffee.jpg", "mask": "coffee_spoon_mask.png",
            "instruction": "remove the spoon"}


def astronaut() -> dict:
    from skimage import data

    image = Image.fromarray(data.astronaut())  # 512x512

    def shuttle(draw: ImageDraw.ImageDraw) -> None:
        draw.polygon([(390, 0), (442, 0), (462, 60), (464, 268), (476, 292), (362, 294),
                      (350, 228), (376, 92)], fill=255)

    image.save(HERE / "astronaut.jpg", quality=85)
    _mask(image.size, shuttle).save(HERE / "astronaut_shuttle_mask.png", optimize=True)
    return {"name": "astronaut", "image": "astronaut.jpg", "mask": "astronaut_shuttle_mask.png",
            "instruction": "remove the space shuttle model"}


def main() -> None:
    examples = [coffee(), astronaut()]
    (HERE / "examples.json").write_text(json.dumps(examples, indent=2) + "\n")
    for ex in examples:
        mask = np.asarray(Image.open(HERE / ex["mask"]))
        size = (HERE / ex["image"]).stat().st_size
        print(f"{ex['image']}: {size / 1024:.0f} KB, mask covers {(mask > 0).mean():.1%}")


if __name__ == "__main__":
    main()
