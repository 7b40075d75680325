"""Offline removal quality on holes with known truth, and how well the fill checks see bad fills.

Object-shaped masks (the bundled demo masks and the eval suite's object masks) are scaled and moved
onto background areas of the bundled photos and scikit-image's sample photos, where the true
pixels under the hole are known. Every OpenCV method fills every hole; PSNR and SSIM are measured
inside the hole only, and time per hole is reported next to Telea's in the same process.

Then the checks of `tools.fill_checks` as the verifier uses them (`tools.metrics.objective_checks`):
- fill texture: flagged share of deliberately bad fills (flat: the ring's mean colour; smeared:
  the truth under a 6 px Gaussian blur) against false alarms on good fills (the truth itself);
  the share of each method's fills it flags is printed too;
- object left at the border: a real object (cut from its photo with its mask: spoon, cookie,
  tripod, shuttle, ...) is pasted onto each hole's spot; a half-covered removal (mask over the
  object's first half along its longer side, dilated, filled with the truth) should be flagged,
  a full one (mask over the whole object, dilated) should not.

FSR_BEST takes minutes on a large hole, so it runs only on a separate set of small holes (128 px
images, holes about 20 px across), where every other method runs as well for comparison.

    python benchmarks/removal_quality.py                  # about 1.5-2 min on 2 busy cores
    python benchmarks/removal_quality.py --holes 2 --small-holes 2 --size 192   # quick look
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tools.inpaint import OPENCV_METHODS, OpenCVInpainter
from tools.masks import dilate
from tools.metrics import objective_checks
from tools.types import EditCategory

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "evals" / "suites" / "basic"
EXAMPLES = ROOT / "interfaces" / "examples"


def photos() -> dict[str, np.ndarray]:
    """name -> RGB uint8: the bundled demo photos and scikit-image samples (textures included)."""
    from skimage import data

    out = {
        "coffee": np.asarray(Image.open(EXAMPLES / "coffee.jpg").convert("RGB")),
        "astronaut": np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB")),
    }
    for name in ("camera", "chelsea", "rocket", "brick", "grass", "gravel"):
        image = getattr(data, name)()
        out[name] = np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3]
    return out


def objects_of(name: str, shape: tuple[int, int]) -> np.ndarray:
    """Union of the known object masks of photo `name` (so holes land on background)."""
    found = np.zeros(shape, bool)
    paths = [*SUITE.glob(f"{name}-*.mask.png"), *EXAMPLES.glob(f"{name}_*mask.png")]
    for path in paths:
        mask = np.asarray(Image.open(path).convert("L").resize(shape[::-1], Image.NEAREST)) > 127
        if mask.mean() < 0.5:  # skip inverted (background) masks
            found |= mask
    return found


def shapes() -> list[np.ndarray]:
    """Object silhouettes (boolean, cropped to their box) from every object mask we ship."""
    out = []
    for path in sorted([*SUITE.glob("*.mask.png"), *EXAMPLES.glob("*_mask.png")]):
        mask = (np.asarray(Image.open(path).convert("L")) > 127).astype(np.uint8)
        if not 0.002 < mask.mean() < 0.3:
            continue
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = stats[biggest, :4]
        out.append(labels[y : y + h, x : x + w] == biggest)
    return out


def resize_max(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def place(shape: np.ndarray, size: int, image_shape: tuple[int, int], avoid: np.ndarray,
          rng: np.random.Generator) -> np.ndarray | None:
    """The silhouette scaled to `size` px (longest side) at a random spot clear of `avoid`."""
    h, w = shape.shape
    scale = size / max(h, w)
    sh = cv2.resize(shape.astype(np.uint8), (max(3, round(w * scale)), max(3, round(h * scale))),
                    interpolation=cv2.INTER_NEAREST).astype(bool)
    H, W = image_shape
    if rng.random() < 0.5:
        sh = sh[:, ::-1]
    margin = 6
    for _ in range(300):
        y = int(rng.integers(margin, max(margin + 1, H - sh.shape[0] - margin)))
        x = int(rng.integers(margin, max(margin + 1, W - sh.shape[1] - margin)))
        mask = np.zeros(image_shape, bool)
        mask[y : y + sh.shape[0], x : x + sh.shape[1]] = sh
        if not (mask & avoid).any():
            return mask
    return None


def holes(images: dict[str, np.ndarray], side: int, per_image: int, hole_frac: tuple[float, float],
          seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    silhouettes = shapes()
    out = []
    for name, full in images.items():
        image = resize_max(full, side)
        avoid = dilate((objects_of(name, image.shape[:2]) * 255).astype(np.uint8), 6) > 0
        for _ in range(per_image):
            frac = rng.uniform(*hole_frac)
            shape = silhouettes[int(rng.integers(len(silhouettes)))]
            mask = place(shape, round(frac * side), image.shape[:2], avoid, rng)
            if mask is not None and mask.sum() >= 40:
                out.append({"image": name, "truth": image, "mask": (mask * 255).astype(np.uint8)})
    return out


def hole_psnr(truth: np.ndarray, result: np.ndarray, mask: np.ndarray) -> float:
    inside = mask > 0
    diff = truth[inside].astype(np.float64) - result[inside].astype(np.float64)
    mse = float(np.mean((diff / 255.0) ** 2))
    return 100.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def hole_ssim(truth: np.ndarray, result: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the Gaussian-window SSIM map (skimage's defaults) over the hole's pixels."""
    a, b = truth.astype(np.float64) / 255, result.astype(np.float64) / 255
    c1, c2 = 0.01**2, 0.03**2

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    maps = []
    for c in range(3):
        x, y = a[..., c], b[..., c]
        ux, uy = blur(x), blur(y)
        vx, vy, vxy = blur(x * x) - ux**2, blur(y * y) - uy**2, blur(x * y) - ux * uy
        maps.append(((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2)))
    return float(np.mean(np.mean(maps, axis=0)[mask > 0]))


def failed(checks, names) -> bool:
    return any(c.name in names and not c.passed for c in checks)


TEXTURE_CHECKS = {"fill_texture", "fill_colour"}
BORDER_CHECKS = {"object_at_border"}


def bad_fills(truth: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    inside = (mask > 0)[..., None]
    ring = (dilate(mask, 8) > 0) & (mask == 0)
    flat = np.where(inside, truth[ring].mean(axis=0).astype(np.uint8), truth)
    smeared = np.where(inside, cv2.GaussianBlur(truth, (0, 0), 6.0), truth)
    return {"flat": flat, "smeared": smeared}


def run_methods(cases: list[dict], methods: list[str], label: str) -> dict[str, dict]:
    rows: dict[str, dict] = {m: {"psnr": [], "ssim": [], "time": [], "flagged": 0} for m in methods}
    for index, case in enumerate(cases, 1):
        truth, mask = case["truth"], case["mask"]
        for method in methods:
            inpainter = OpenCVInpainter(method=method)
            start = time.perf_counter()
            out = inpainter.fill(truth, mask)
            rows[method]["time"].append(time.perf_counter() - start)
            rows[method]["psnr"].append(hole_psnr(truth, out, mask))
            rows[method]["ssim"].append(hole_ssim(truth, out, mask))
            checks = objective_checks(EditCategory.REMOVAL, truth, out, mask)
            rows[method]["flagged"] += failed(checks, TEXTURE_CHECKS)
        print(f"  {label} hole {index}/{len(cases)} ({case['image']}, "
              f"{int((mask > 0).sum())} px) done", flush=True)
    return rows


def print_methods(rows: dict[str, dict], count: int, title: str) -> None:
    base = statistics.mean(rows["telea"]["time"])
    print(f"\n{title} ({count} holes)")
    print(f"{'method':10} {'PSNR in hole':>13} {'SSIM in hole':>13} {'dB vs telea':>12} "
          f"{'s / hole':>9} {'x telea':>8} {'flagged':>8}")
    telea = statistics.mean(rows["telea"]["psnr"])
    for method, r in rows.items():
        psnr, ssim, sec = (statistics.mean(r[k]) for k in ("psnr", "ssim", "time"))
        print(f"{method:10} {psnr:13.2f} {ssim:13.3f} {psnr - telea:+12.2f} {sec:9.3f} "
              f"{sec / base:8.1f} {r['flagged'] / count:8.0%}")
    wins = {m: 0 for m in rows}
    for i in range(count):
        best = max(rows, key=lambda m: rows[m]["psnr"][i])
        wins[best] += 1
    print("best PSNR per hole: " + ", ".join(f"{m} {n}" for m, n in wins.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="longest image side (px)")
    parser.add_argument("--holes", type=int, default=4, help="holes per photo")
    parser.add_argument("--small-holes", type=int, default=1,
                        help="small holes per photo for the FSR_BEST comparison (128 px images)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    images = photos()
    cases = holes(images, args.size, args.holes, (0.15, 0.3), args.seed)
    print(f"{len(cases)} holes on {len(images)} photos at {args.size} px "
          f"(holes 15-30% of the side); methods one thread each")
    fast = [m for m in OPENCV_METHODS if m != "fsr_best"]
    rows = run_methods(cases, ["telea", *[m for m in fast if m != "telea"]], "main")
    small = holes(images, 128, args.small_holes, (0.14, 0.18), args.seed + 1)
    small_rows = run_methods(small, ["telea", *[m for m in OPENCV_METHODS if m != "telea"]],
                             "small")
    print_methods(rows, len(cases), f"OpenCV fills at {args.size} px")
    print_methods(small_rows, len(small), "Small holes at 128 px, FSR_BEST included")

    # --- the texture check: bad fills against good ones -------------------------------------
    detected = {"flat": 0, "smeared": 0}
    false_alarms = 0
    for case in cases:
        truth, mask = case["truth"], case["mask"]
        false_alarms += failed(objective_checks("removal", truth, truth, mask), TEXTURE_CHECKS)
        for kind, fill in bad_fills(truth, mask).items():
            detected[kind] += failed(objective_checks("removal", truth, fill, mask),
                                     TEXTURE_CHECKS)
    n = len(cases)
    print(f"\nfill texture check on {n} holes: flags {detected['flat'] / n:.0%} of flat fills, "
          f"{detected['smeared'] / n:.0%} of smeared fills (6 px blur); false alarms on the "
          f"true fill {false_alarms / n:.0%}")

    # --- the border check: a half-covered object against a fully covered one -----------------
    half_hits, full_alarms, n = border_check(cases, images, args.seed)
    print(f"object-at-border check on {n} pasted objects: flags {half_hits / n:.0%} of "
          f"half-covered removals; false alarms on fully covered ones {full_alarms / n:.0%}")


def real_objects() -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB crop, boolean silhouette) of every object we have a mask for, cut from its photo."""
    out = []
    for path in sorted([*SUITE.glob("*.mask.png"), *EXAMPLES.glob("*_mask.png")]):
        photo = SUITE / (path.name.split("-")[0] + ".png")
        if path.parent == EXAMPLES:
            photo = EXAMPLES / (path.name.split("_")[0] + ".jpg")
        mask = np.asarray(Image.open(path).convert("L")) > 127
        if not 0.002 < mask.mean() < 0.3 or not photo.exists():
            continue
        image = np.asarray(Image.open(photo).convert("RGB"))
        ys, xs = np.nonzero(mask)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        out.append((image[box], mask[box]))
    return out


def border_check(cases: list[dict], images: dict[str, np.ndarray], seed: int
                 ) -> tuple[int, int, int]:
    """Paste real objects onto the holes' spots; check a full and a half-covering mask."""
    rng = np.random.default_rng(seed + 2)
    objects = real_objects()
    half_hits = full_alarms = 0
    for case in cases:
        truth, spot = case["truth"], case["mask"] > 0
        crop, silhouette = objects[int(rng.integers(len(objects)))]
        ys, xs = np.nonzero(spot)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        scale = min(h / crop.shape[0], w / crop.shape[1]) * 1.3
        size = (max(4, round(crop.shape[1] * scale)), max(4, round(crop.shape[0] * scale)))
        patch = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        shape = cv2.resize(silhouette.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        y0 = min(max(0, ys.min()), truth.shape[0] - size[1])
        x0 = min(max(0, xs.min()), truth.shape[1] - size[0])
        obj = np.zeros(truth.shape[:2], np.uint8)
        obj[y0 : y0 + size[1], x0 : x0 + size[0]] = shape * 255
        canvas = truth.copy()
        canvas[y0 : y0 + size[1], x0 : x0 + size[0]] = patch
        source = np.where((obj > 0)[..., None], canvas, truth)
        margin = max(2, round(0.03 * max(truth.shape[:2])))
        full = dilate(obj, margin)
        clean = np.where((full > 0)[..., None], truth, source)
        full_alarms += failed(objective_checks("removal", source, clean, full), BORDER_CHECKS)
        # cut across the object's longer side, so the part left outside is a real piece of it
        oys, oxs = np.nonzero(obj)
        half_obj = obj.copy()
        if np.ptp(oxs) >= np.ptp(oys):
            half_obj[:, (oxs.min() + oxs.max()) // 2 :] = 0
        else:
            half_obj[(oys.min() + oys.max()) // 2 :, :] = 0
        half = dilate(half_obj, margin)
        leftover = np.where((half > 0)[..., None], truth, source)
        half_hits += failed(objective_checks("removal", source, leftover, half), BORDER_CHECKS)
    return half_hits, full_alarms, len(cases)


if __name__ == "__main__":
    main()
