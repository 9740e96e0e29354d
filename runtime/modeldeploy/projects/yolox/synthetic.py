"""Synthetic 2D detection data in COCO format: coloured shapes on cluttered backgrounds.

Why shapes: four classes that differ in outline, not colour (ellipse, triangle, textured
rectangle, cross), at scales from ~10 px to more than half the image, so every head level
(strides 8/16/32) has objects and a tiny YOLOX must learn shape. Backgrounds are
gradients with noise, texture stripes and clutter lines (never labelled). Image ``i``
depends only on ``(seed, i)``; files are PNG, boxes are the exact drawn extents.

Layout (what the data loader reads, the same as any COCO dataset)::

    <root>/annotations.json   {"images": [...], "annotations": [...], "categories": [...]}
    <root>/images/000000.png  BGR, 8-bit

Usage: ``python -m modeldeploy.projects.yolox.synthetic OUT --num-images N --seed S``
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from modeldeploy.core.bundled import materialize_dataset

FORMAT_VERSION = "v1"
ANNOTATION_FILE = "annotations.json"
CLASSES = ("ellipse", "triangle", "rectangle", "cross")


def _colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> tuple[int, int, int]:
    for _ in range(20):
        hsv = np.array([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(90, 256)]]], dtype=np.uint8)
        bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(int)
        if avoid is None or np.abs(bgr - avoid).sum() > 120:
            break
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    t = np.linspace(0, 1, w if rng.random() < 0.5 else h)
    grad = c0[None, :] * (1 - t[:, None]) + c1[None, :] * t[:, None]
    img = (
        np.broadcast_to(grad[None, :, :], (h, w, 3))
        if grad.shape[0] == w
        else np.broadcast_to(grad[:, None, :], (h, w, 3))
    )
    img = img.astype(np.float32).copy()
    if rng.random() < 0.5:  # low-contrast stripes
        period, phase = rng.uniform(6, 30), rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        ang = rng.uniform(0, math.pi)
        img += (12 * np.sin((xx * math.cos(ang) + yy * math.sin(ang)) / period * 2 * math.pi + phase))[..., None]
    img += rng.normal(0, rng.uniform(2, 10), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 6))):  # clutter lines: not objects
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p0, p1, _colour(rng), int(rng.integers(1, 3)), cv2.LINE_AA)
    return img


def _draw(
    img: np.ndarray,
    rng: np.random.Generator,
    cls: int,
    cx: float,
    cy: float,
    bw: float,
    bh: float,
    colour: tuple[int, int, int],
) -> list[float]:
    """Draw one object inside the box (cx, cy, bw, bh); return its exact [x, y, w, h]."""
    x0, y0, x1, y1 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
    if CLASSES[cls] == "ellipse":
        cv2.ellipse(
            img,
            (int(round(cx)), int(round(cy))),
            (int(round(bw / 2)), int(round(bh / 2))),
            0,
            0,
            360,
            colour,
            -1,
            cv2.LINE_AA,
        )
        a, b = int(round(bw / 2)), int(round(bh / 2))
        x0, y0, x1, y1 = round(cx) - a, round(cy) - b, round(cx) + a + 1, round(cy) + b + 1
    elif CLASSES[cls] == "triangle":
        apex = x0 + rng.uniform(0.2, 0.8) * bw
        pts = (
            np.array([[apex, y0], [x1, y1], [x0, y1]])
            if rng.random() < 0.5
            else np.array([[apex, y1], [x1, y0], [x0, y0]])
        )
        ipts = np.round(pts).astype(np.int32)
        cv2.fillPoly(img, [ipts], colour, cv2.LINE_AA)
        x0, y0 = ipts.min(0)
        x1, y1 = ipts.max(0) + 1
    elif CLASSES[cls] == "rectangle":
        ix0, iy0, ix1, iy1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
        patch = np.empty((iy1 - iy0, ix1 - ix0, 3), np.uint8)
        patch[:] = colour
        dark = tuple(int(c * 0.45) for c in colour)
        step = max(3, int(min(bw, bh) / rng.uniform(3, 6)))
        if rng.random() < 0.5:
            patch[:, ::step] = dark
            patch[:, 1::step] = dark
        else:
            patch[::step, :] = dark
            patch[1::step, :] = dark
        img[iy0:iy1, ix0:ix1] = patch
        x0, y0, x1, y1 = ix0, iy0, ix1, iy1
    else:  # cross
        t = rng.uniform(0.22, 0.38)
        ix0, iy0, ix1, iy1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
        tw, th = max(2, int(round(bw * t))), max(2, int(round(bh * t)))
        mx, my = (ix0 + ix1) // 2, (iy0 + iy1) // 2
        cv2.rectangle(img, (mx - tw // 2, iy0), (mx - tw // 2 + tw - 1, iy1 - 1), colour, -1)
        cv2.rectangle(img, (ix0, my - th // 2), (ix1 - 1, my - th // 2 + th - 1), colour, -1)
        x0, y0, x1, y1 = ix0, iy0, ix1, iy1
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _overlap(a: list[float], b: list[float]) -> float:
    """Intersection over the smaller box: objects may not hide each other (their labels would lie)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / min(a[2] * a[3], b[2] * b[3])


def render_image(
    seed: int, index: int, min_size: int = 200, max_size: int = 320
) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """Image ``index`` of the ``seed`` set → (BGR uint8 image, [(class index, [x, y, w, h])])."""
    rng = np.random.default_rng([seed, index])
    h, w = int(rng.integers(min_size, max_size + 1)), int(rng.integers(min_size, max_size + 1))
    img = _background(rng, h, w)
    objects: list[tuple[int, list[float]]] = []
    for _ in range(int(rng.integers(1, 7))):
        for _try in range(10):
            size = math.exp(rng.uniform(math.log(10), math.log(0.6 * min(h, w))))
            aspect = math.exp(rng.uniform(-0.4, 0.4))
            bw, bh = max(8.0, size * aspect), max(8.0, size / aspect)
            cx, cy = rng.uniform(bw / 2 + 1, w - bw / 2 - 1), rng.uniform(bh / 2 + 1, h - bh / 2 - 1)
            box = [cx - bw / 2, cy - bh / 2, bw, bh]
            if all(_overlap(box, o[1]) == 0.0 for o in objects):
                cls = int(rng.integers(0, len(CLASSES)))
                bg = img[int(cy), int(cx)].astype(int)
                objects.append((cls, _draw(img, rng, cls, cx, cy, bw, bh, _colour(rng, bg))))
                break
    return img, objects


def generate_dataset(out: str | Path, num_images: int, seed: int, min_size: int = 200, max_size: int = 320) -> Path:
    """Write ``num_images`` images and ``annotations.json``; return the annotation file."""
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(num_images):
        img, objects = render_image(seed, i, min_size, max_size)
        name = f"images/{i:06d}.png"
        cv2.imwrite(str(root / name), img)
        images.append({"id": i + 1, "file_name": name, "height": int(img.shape[0]), "width": int(img.shape[1])})
        for cls, box in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": cls + 1,
                    "bbox": [round(v, 2) for v in box],
                    "area": round(box[2] * box[3], 2),
                    "iscrowd": 0,
                }
            )
    doc = {
        "info": {"description": f"modeldeploy yolox synthetic shapes {FORMAT_VERSION}, seed {seed}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES)],
    }
    path = root / ANNOTATION_FILE
    path.write_text(json.dumps(doc))
    return path


def bundled_dataset(
    num_images: int, seed: int, min_size: int = 200, max_size: int = 320, root: Path | None = None
) -> Path:
    """Generate the deterministic sample once into the cache; return its annotation file."""
    name = f"yolox-synthetic-{FORMAT_VERSION}-s{seed}-n{num_images}-{min_size}-{max_size}"
    return materialize_dataset(
        name, ANNOTATION_FILE, lambda d: generate_dataset(d, num_images, seed, min_size, max_size), root
    )


def example_image_sample(settings: Any, seed: int = 0) -> dict[str, Any]:
    """A sample in the data loader's format, rendered in memory at ``settings.img_scale``
    (width, height) with no ground truth: the example input for an export without data."""
    w, h = settings.img_scale
    image, _ = render_image(seed, 0, min_size=160, max_size=160)  # objects drawn on a small canvas, scaled up
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    return {
        "image": image,
        "image_id": 0,
        "file_name": "<synthesised example input>",
        "ori_shape": (h, w),
        "gt_boxes": np.zeros((0, 4), np.float32),
        "gt_labels": np.zeros((0,), np.int64),
        "index": 0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output directory (created)")
    ap.add_argument("--num-images", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--min-size", type=int, default=200)
    ap.add_argument("--max-size", type=int, default=320)
    a = ap.parse_args(argv)
    if a.num_images < 1 or a.min_size < 64 or a.max_size < a.min_size:
        ap.error("--num-images must be >= 1, --min-size >= 64 and --max-size >= --min-size")
    path = generate_dataset(a.out, a.num_images, a.seed, a.min_size, a.max_size)
    print(f"wrote {a.num_images} images; annotations: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
