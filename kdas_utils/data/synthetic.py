"""A synthetic colonoscopy generator: the series' embedded default dataset.

Each frame is painted in layers, the way a colonoscope sees the colon:

1. **mucosa**: a pink-orange base colour modulated by multi-scale smooth noise;
2. **vessels**: thin dark-red random walks under the surface;
3. **lumen and folds**: a dark tunnel centre with haustral folds (bright rims, dark shadows)
   curving around it;
4. **polyps** (0 to 3): blobs with an irregular outline (a few Fourier harmonics of the
   radius), a dome shading lit from the scope, their own fine texture and colour (redder,
   paler, or almost the mucosa's own: the hard case), and a soft or sharp edge;
5. **bubbles**: transparent distractors with bright rims and no label;
6. **light**: vignette, specular highlights (on polyps and mucosa alike, so a bright spot
   is no give-away), defocus blur, sensor noise and, for some frames, the black corners of
   the scope's circular field of view.

The mask is the union of the polyp outlines inside the visible field. Everything is drawn
from ``numpy.random.default_rng([seed, split, index])``, so a frame depends only on its
seed, split and index, and the same seed writes byte-identical files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .pairs import DatasetError

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Style:
    """The knobs of one synthetic domain (a test set may shift them)."""

    brightness: float = 1.0  # global illumination gain
    blur_max: float = 1.2  # maximum defocus sigma in pixels (at 256 px)
    polyp_radius: tuple[float, float] = (0.05, 0.28)  # as a fraction of the frame size
    polyp_contrast: float = 1.0  # scales how far a polyp's colour departs from the mucosa
    noise: float = 3.0  # sensor noise standard deviation (0-255 scale)
    polyp_counts: tuple[float, float, float, float] = (0.1, 0.6, 0.2, 0.1)  # P(0..3 polyps)


TRAIN_STYLE = Style()
# A shifted domain for generalisation: darker, blurrier, smaller and flatter polyps.
SHIFT_STYLE = Style(brightness=0.8, blur_max=2.2, polyp_radius=(0.035, 0.16), polyp_contrast=0.6, noise=5.0)

SPLITS = {  # split id, folder, style
    "train": (0, Path("TrainDataset"), TRAIN_STYLE),
    "Synthetic": (1, Path("TestDataset") / "Synthetic", TRAIN_STYLE),
    "Synthetic-Shift": (2, Path("TestDataset") / "Synthetic-Shift", SHIFT_STYLE),
}


# --------------------------------------------------------------------------- helpers


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``(size, size)`` noise in [-1, 1] that varies over about ``size / cells`` pixels."""
    coarse = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    fine = cv2.resize(coarse, (size + size // cells * 3, size + size // cells * 3), interpolation=cv2.INTER_CUBIC)
    offset = size // cells
    fine = fine[offset : offset + size, offset : offset + size]
    return fine / (np.abs(fine).max() + 1e-6)


def fractal_noise(rng: np.random.Generator, size: int, octaves=(3, 7, 16, 40)) -> np.ndarray:
    """Sum of :func:`smooth_noise` octaves with weights halving per octave, in [-1, 1]."""
    total = sum(0.5**i * smooth_noise(rng, size, cells) for i, cells in enumerate(octaves))
    return total / (np.abs(total).max() + 1e-6)


def _blur(layer: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(layer, (0, 0), sigma) if sigma > 0.05 else layer


def polyp_outline(rng: np.random.Generator, centre, radius: float, points: int = 180) -> np.ndarray:
    """``(points, 2)`` float polygon: a circle whose radius wobbles with harmonics 2-5."""
    theta = np.linspace(0, 2 * np.pi, points, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 6):
        r += rng.uniform(0, 0.22 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    squash = rng.uniform(0.7, 1.0)  # ellipticity
    angle = rng.uniform(0, np.pi)
    x, y = radius * r * np.cos(theta), radius * squash * r * np.sin(theta)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([centre[0] + c * x - s * y, centre[1] + s * x + c * y], axis=1)


def _fill(polygon: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask


# --------------------------------------------------------------------------- layers


def _mucosa(rng, size):
    base = np.array([rng.uniform(195, 235), rng.uniform(100, 140), rng.uniform(80, 115)], np.float32)
    texture = fractal_noise(rng, size)
    redness = smooth_noise(rng, size, 4)
    image = base * (0.82 + 0.18 * texture[..., None])
    image[..., 1:] *= 1 - 0.08 * redness[..., None]
    return np.clip(image, 0, 255), base


def _vessels(rng, image, size):
    layer = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(3, 9)):
        point = rng.uniform(0, size, 2)
        heading = rng.uniform(0, 2 * np.pi)
        path = [point.copy()]
        for _ in range(rng.integers(15, 50)):
            heading += rng.normal(0, 0.35)
            point = point + 5 * np.array([np.cos(heading), np.sin(heading)])
            path.append(point.copy())
        cv2.polylines(
            layer,
            [np.round(np.array(path) * 16).astype(np.int32)],
            False,
            float(rng.uniform(0.4, 1.0)),
            thickness=int(rng.integers(1, 3)),
            lineType=cv2.LINE_AA,
            shift=4,
        )
    layer = _blur(layer, 0.8)[..., None]
    return image * (1 - layer * np.array([0.15, 0.45, 0.4], np.float32))


def _lumen_and_folds(rng, image, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = rng.uniform(0.2 * size, 0.8 * size, 2)
    distance = np.hypot(xx - centre[0], yy - centre[1])
    sigma = rng.uniform(0.10, 0.22) * size
    lumen = np.exp(-(distance**2) / (2 * sigma**2))
    rims = np.zeros((size, size), np.float32)
    shadows = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(1, 5)):
        radius = rng.uniform(0.25, 0.9) * size
        axes = (int(radius), int(radius * rng.uniform(0.5, 0.9)))
        start = rng.uniform(0, 360)
        span = rng.uniform(60, 200)
        angle = rng.uniform(0, 180)
        thick = int(rng.integers(2, 6))
        c = (int(centre[0]), int(centre[1]))
        cv2.ellipse(rims, c, axes, angle, start, start + span, 1.0, thick, cv2.LINE_AA)
        shadow_axes = (axes[0] + thick * 2, axes[1] + thick * 2)
        cv2.ellipse(shadows, c, shadow_axes, angle, start, start + span, 1.0, thick * 2, cv2.LINE_AA)
    rims, shadows = _blur(rims, 2.0), _blur(shadows, 4.0)
    shade = (1 - 0.88 * lumen) * (1 + 0.22 * rims - 0.35 * shadows)
    return image * shade[..., None], centre


def _vignette(image, size, strength):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(xx - size / 2, yy - size / 2) / (size / np.sqrt(2))
    return image * (1 - strength * r**2.2)[..., None]


def _polyp(rng, image, mask, size, style, mucosa_colour):
    radius = size * np.exp(rng.uniform(*np.log(style.polyp_radius)))
    centre = rng.uniform(radius * 0.6, size - radius * 0.6, 2)
    shape = _fill(polyp_outline(rng, centre, radius), size)
    if shape.sum() < 12:
        return image, mask
    dome = cv2.distanceTransform(shape, cv2.DIST_L2, 5)
    dome = np.sqrt(dome / (dome.max() + 1e-6))
    light = rng.uniform(-1, 1, 2)
    gy, gx = np.gradient(dome)
    directional = np.clip(1 + 6 * (gx * light[0] + gy * light[1]), 0.6, 1.4)
    kind = rng.choice(["red", "pale", "similar", "dark"], p=[0.35, 0.3, 0.2, 0.15])
    tint = {
        "red": [1.05, 0.78, 0.8],
        "pale": [1.08, 1.15, 1.12],
        "similar": [1.0, 0.97, 0.97],
        "dark": [0.8, 0.72, 0.75],
    }[kind]
    tint = 1 + (np.array(tint, np.float32) - 1) * style.polyp_contrast
    pits = 0.06 * smooth_noise(rng, size, int(size / rng.uniform(3, 8)))
    colour = mucosa_colour * tint * (0.78 + 0.3 * dome[..., None] + pits[..., None]) * directional[..., None]
    edge = rng.uniform(0.3, 3.0)
    alpha = _blur(shape.astype(np.float32), edge)[..., None]
    # A thin shadow on the far side of the light, where the polyp meets the wall.
    ring = _blur(shape.astype(np.float32), edge + 1.5) - shape
    image = image * (1 - 0.35 * np.clip(ring, 0, 1)[..., None])
    image = image * (1 - alpha) + colour * alpha
    return image, np.maximum(mask, shape)


def _bubbles(rng, image, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        centre, radius = rng.uniform(0, size, 2), rng.uniform(0.01, 0.05) * size
        d = np.hypot(xx - centre[0], yy - centre[1]) / radius
        rim = np.exp(-((d - 1) ** 2) / 0.02)
        image = image * (1 + 0.5 * rim[..., None]) + 20 * (d < 1)[..., None]
    return image


def _highlights(rng, image, size, mask):
    layer = np.zeros((size, size), np.float32)
    spots = [rng.uniform(0, size, 2) for _ in range(rng.integers(2, 10))]
    ys, xs = np.nonzero(mask)
    if len(xs):  # polyps catch the light too
        for i in rng.integers(0, len(xs), rng.integers(1, 5)):
            spots.append(np.array([xs[i], ys[i]], np.float32))
    for x, y in spots:
        axes = (int(rng.integers(1, 6)), int(rng.integers(1, 4)))
        cv2.ellipse(layer, (int(x), int(y)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
    layer = _blur(layer, 0.9)[..., None]
    return image * (1 - layer) + 250 * layer


def _field_of_view(rng, size):
    """1 inside the scope's visible field; Kvasir-like frames have black corners."""
    if rng.random() < 0.5:
        return np.ones((size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(xx - size / 2, yy - size / 2) / (size / 2)
    return (r < rng.uniform(1.12, 1.35)).astype(np.float32)


def render_frame(rng: np.random.Generator, size: int = 256, style: Style = TRAIN_STYLE, return_layers: bool = False):
    """Paint one synthetic frame.

    Returns:
        ``(image, mask)``: ``(size, size, 3) uint8`` RGB and ``(size, size) uint8`` {0, 1};
        with ``return_layers=True`` also a dict of the intermediate RGB layers, in the
        order they were painted (for notebook 01's figure).
    """
    layers = {}
    image, mucosa_colour = _mucosa(rng, size)
    layers["mucosa"] = image
    image = _vessels(rng, image, size)
    layers["vessels"] = image
    image, _ = _lumen_and_folds(rng, image, size)
    layers["lumen and folds"] = image
    mask = np.zeros((size, size), np.uint8)
    n_polyps = rng.choice(4, p=style.polyp_counts)
    for _ in range(n_polyps):
        image, mask = _polyp(rng, image, mask, size, style, mucosa_colour)
    layers["polyps"] = image
    image = _bubbles(rng, image, size)
    image = _vignette(image, size, rng.uniform(0.3, 0.6)) * style.brightness
    image = _highlights(rng, image, size, mask)
    image = _blur(image, rng.uniform(0, style.blur_max))
    image = image + rng.normal(0, style.noise, image.shape).astype(np.float32)
    fov = _field_of_view(rng, size)
    image = image * fov[..., None]
    mask = mask * fov.astype(np.uint8)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    layers["light and optics"] = image
    if return_layers:
        return image, mask, {k: np.clip(v, 0, 255).astype(np.uint8) for k, v in layers.items()}
    return image, mask


def frame_rng(seed: int, split: int, index: int) -> np.random.Generator:
    """The random generator of one frame: it depends on nothing else."""
    return np.random.default_rng([seed, split, index])


# --------------------------------------------------------------------------- dataset


def _manifest(seed, n_train, n_test, size):
    return {
        "generator": "kdas_utils.data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "size": size,
        "splits": {name: str(folder) for name, (_, folder, _) in SPLITS.items()},
    }


def make_synthetic(
    root: str | Path, seed: int = 0, n_train: int = 240, n_test: int = 60, size: int = 256, overwrite: bool = False
) -> Path:
    """Write the synthetic dataset in the PraNet layout under ``root`` and return ``root``.

    Layout: ``TrainDataset/{images,masks}`` (``n_train`` frames) and
    ``TestDataset/{Synthetic,Synthetic-Shift}/{images,masks}`` (``n_test`` each; the second
    in a shifted style: darker, blurrier, smaller and flatter polyps). Images are JPEG
    (quality 95, like the real releases), masks 8-bit PNG with values {0, 255}.

    The same arguments give byte-identical files. A folder already holding the same
    dataset (same ``synthetic.json``) is returned as it is; one holding another synthetic
    dataset is replaced; a non-empty folder that is not a synthetic dataset is refused,
    so that nothing of the user's is overwritten. The dataset is written to a temporary
    folder and moved into place at the end, so an interrupted run leaves nothing half-written.
    """
    root = Path(root).expanduser()
    manifest = _manifest(seed, n_train, n_test, size)
    manifest_path = root / "synthetic.json"
    if root.exists() and any(root.iterdir()):
        if not manifest_path.is_file():
            raise DatasetError(
                f"{root}: not empty and not a synthetic dataset (no synthetic.json); refusing to "
                f"overwrite it. Choose an empty folder or set KDAS_SYNTH_ROOT elsewhere."
            )
        if json.loads(manifest_path.read_text()) == manifest and not overwrite:
            return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        for name, (split_id, folder, style) in SPLITS.items():
            count = n_train if name == "train" else n_test
            (staging / folder / "images").mkdir(parents=True)
            (staging / folder / "masks").mkdir(parents=True)
            prefix = "synth" if name == "train" else name.lower().replace("-", "_")
            for index in range(count):
                image, mask = render_frame(frame_rng(seed, split_id, index), size, style)
                stem = f"{prefix}_{index:04d}"
                Image.fromarray(image).save(staging / folder / "images" / f"{stem}.jpg", quality=95)
                Image.fromarray(mask * 255).save(staging / folder / "masks" / f"{stem}.png")
        (staging / "synthetic.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return root


def style_table() -> list[dict]:
    """The two synthetic styles as rows (for notebook 01's table)."""
    return [
        {"style": name, **asdict(style)}
        for name, style in (("train / Synthetic", TRAIN_STYLE), ("Synthetic-Shift", SHIFT_STYLE))
    ]
