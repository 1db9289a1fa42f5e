"""Scene drawing: a cluttered background, 1-3 category objects (shape, hue, pattern) and their visible masks."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from sslsan.data.synthetic.categories import CATEGORY_LIBRARY
from sslsan.data.synthetic.synth_config import SynthConfig, SynthError
from sslsan.media import box_from_mask


def _circle(n: int = 48, r: float = 1.0, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False) - np.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _heart() -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = 16 * np.sin(a) ** 3
    y = -(13 * np.cos(a) - 5 * np.cos(2 * a) - 2 * np.cos(3 * a) - np.cos(4 * a))
    return np.stack([x, y + 2.5], 1) / 16.5


def _capsule() -> np.ndarray:
    right = _circle(24, 0.45, 0.55, 0.0)[np.r_[18:24, 0:7]]  # right half-circle
    left = _circle(24, 0.45, -0.55, 0.0)[6:19]  # left half-circle
    return np.concatenate([right, left])


# each shape: list of (polygon in unit coordinates, fill) drawn in order; fill 0 cuts a hole
SHAPES: dict[str, list[tuple[np.ndarray, int]]] = {
    "disc": [(_circle(), 1)],
    "square": [(np.array([[-0.85, -0.85], [0.85, -0.85], [0.85, 0.85], [-0.85, 0.85]]), 1)],
    "triangle": [(np.array([[0.0, -1.0], [0.95, 0.7], [-0.95, 0.7]]), 1)],
    "star": [(_star(), 1)],
    "hexagon": [(_circle(6), 1)],
    "cross": [(np.array([[-0.3, -1], [0.3, -1], [0.3, -0.3], [1, -0.3], [1, 0.3], [0.3, 0.3], [0.3, 1],
                         [-0.3, 1], [-0.3, 0.3], [-1, 0.3], [-1, -0.3], [-0.3, -0.3]]), 1)],
    "ring": [(_circle(), 1), (_circle(40, 0.5), 0)],
    "diamond": [(np.array([[0.0, -1.0], [0.6, 0.0], [0.0, 1.0], [-0.6, 0.0]]), 1)],
    "crescent": [(_circle(), 1), (_circle(48, 0.8, 0.45, -0.2), 0)],
    "arrow": [(np.array([[1.0, 0.0], [0.2, -0.75], [0.2, -0.3], [-1.0, -0.3], [-1.0, 0.3], [0.2, 0.3],
                         [0.2, 0.75]]), 1)],
    "heart": [(_heart(), 1)],
    "capsule": [(_capsule(), 1)],
}

# pattern(u, v, freq) -> mix weight of the secondary colour in [0, 1]; (u, v) are object coordinates
PATTERNS = {
    "solid": lambda u, v, f: np.zeros_like(u),
    "stripes": lambda u, v, f: (np.sin(u * f * np.pi) > 0).astype(np.float64),
    "dots": lambda u, v, f: ((np.mod(u * f / 2, 1) - 0.5) ** 2 + (np.mod(v * f / 2, 1) - 0.5) ** 2 < 0.09).astype(np.float64),
    "checker": lambda u, v, f: ((np.floor(u * f / 2) + np.floor(v * f / 2)) % 2).astype(np.float64),
    "rings": lambda u, v, f: (np.sin(np.hypot(u, v) * f * np.pi) > 0).astype(np.float64),
    "gradient": lambda u, v, f: np.clip(0.5 + 0.5 * u, 0, 1),
}

_SUPERSAMPLE = 2  # shapes are drawn at 2x and box-filtered: anti-aliased edges, exact masks


@dataclass
class SceneObject:
    category: int
    cx: float  # centre, fraction of the image side
    cy: float
    radius: float  # fraction of the image side
    angle: float  # radians
    hue: float  # degrees, jittered
    sat: float
    val: float
    dark: float  # value factor of the secondary (pattern) colour
    pattern_freq: float
    sounding: bool = False


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h / 360.0) % 1.0, s, v))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured, cluttered background, float32 (size, size, 3) in [0, 1].

    A low-saturation colour with a gradient and blotches (a small random field, upsampled), faint
    clutter (lines, outlines, patches that belong to no category) and grain.
    """
    g = int(rng.integers(3, 8))
    base = _hsv(rng.uniform(0, 360), rng.uniform(0.03, 0.25), rng.uniform(0.35, 0.75))
    a = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-0.5, 0.5, g)
    grad = (np.cos(a) * ramp[None, :] + np.sin(a) * ramp[:, None]) * rng.uniform(0.1, 0.3)
    blot = (rng.random((g, g, 3)) - 0.5) * rng.uniform(0.1, 0.25)
    field = np.clip(base + grad[..., None] + blot, 0, 1)
    canvas = Image.fromarray((field * 255 + 0.5).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    clutter = canvas.copy()
    draw = ImageDraw.Draw(clutter)
    for _ in range(int(rng.integers(4, 11))):
        col = tuple(int(c * 255) for c in _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.2), rng.uniform(0.2, 0.9)))
        x0, y0 = (rng.uniform(-0.1, 1.0, 2) * size).tolist()
        w, h = (rng.uniform(0.05, 0.4, 2) * size).tolist()
        kind = int(rng.integers(0, 3))
        width = max(1, int(rng.uniform(0.005, 0.02) * size))
        if kind == 0:
            draw.line([(x0, y0), (x0 + w, y0 + h * float(rng.choice([-1, 1])))], fill=col, width=width)
        elif kind == 1:
            draw.ellipse([x0, y0, x0 + w, y0 + h], outline=col, width=width)
        else:
            draw.rectangle([x0, y0, x0 + w * 0.5, y0 + h * 0.5], fill=col)
    img = np.asarray(Image.blend(canvas, clutter, 0.5), dtype=np.float32) * np.float32(1 / 255)
    img += (rng.random(img.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(0.07)  # grain, std 0.02
    return np.clip(img, 0, 1, out=img)


def _object_alpha(obj: SceneObject, size: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """Anti-aliased coverage of one object: its window (rows, cols) in the image and alpha there in [0, 1].

    Drawn at _SUPERSAMPLE x resolution inside the window only, then box-filtered.
    """
    ss = _SUPERSAMPLE
    c, si = math.cos(obj.angle), math.sin(obj.angle)
    rot = np.array([[c, -si], [si, c]])
    polys = [((poly @ rot.T) * obj.radius + np.array([obj.cx, obj.cy])) * size for poly, _ in SHAPES[CATEGORY_LIBRARY[obj.category].shape]]
    lo = np.floor(np.min([p.min(0) for p in polys], axis=0)).astype(int)
    hi = np.ceil(np.max([p.max(0) for p in polys], axis=0)).astype(int) + 1
    x0, y0 = np.maximum(lo, 0).tolist()
    x1, y1 = np.minimum(hi, size).tolist()
    window = (slice(y0, max(y0, y1)), slice(x0, max(x0, x1)))
    w, h = max(0, x1 - x0), max(0, y1 - y0)
    if w == 0 or h == 0:
        return window, np.zeros((h, w), np.float32)
    layer = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(layer)
    for pts, (_, fill) in zip(polys, SHAPES[CATEGORY_LIBRARY[obj.category].shape]):
        draw.polygon([tuple(p) for p in ((pts - [x0, y0]) * ss).tolist()], fill=255 * fill)
    a = np.asarray(layer, dtype=np.float32).reshape(h, ss, w, ss).mean((1, 3))
    return window, a * np.float32(1 / 255)


def _object_texture(obj: SceneObject, size: int, ys: slice, xs: slice) -> np.ndarray:
    """RGB surface of the object over the window (ys, xs), in object coordinates so it rotates with it."""
    cat = CATEGORY_LIBRARY[obj.category]
    py = ((np.arange(ys.start, ys.stop, dtype=np.float32) + 0.5) / size - obj.cy)[:, None]
    px = ((np.arange(xs.start, xs.stop, dtype=np.float32) + 0.5) / size - obj.cx)[None, :]
    c, s = math.cos(obj.angle), math.sin(obj.angle)
    u = (c * px + s * py) / obj.radius
    v = (-s * px + c * py) / obj.radius
    w = PATTERNS[cat.pattern](u, v, obj.pattern_freq).astype(np.float32)[..., None]
    primary = _hsv(obj.hue, obj.sat, obj.val).astype(np.float32)
    secondary = _hsv(obj.hue, obj.sat, obj.val * obj.dark).astype(np.float32)
    shade = (1.0 + 0.12 * (-u - v) / 2.0)[..., None]  # light from the top left
    return np.clip((primary + w * (secondary - primary)) * shade, 0, 1)


def render_scene(objects: list[SceneObject], rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw `objects` (in order, later on top) over a random background.

    Returns the image, uint8 (size, size, 3), and each object's *visible* mask, bool (size, size):
    its coverage >= 0.5 minus the pixels of objects drawn over it.
    """
    img = _background(rng, size)
    covers = []
    for obj in objects:
        (ys, xs), alpha = _object_alpha(obj, size)
        cover = np.zeros((size, size), dtype=bool)
        if alpha.size:
            a = alpha[..., None]
            img[ys, xs] += (_object_texture(obj, size, ys, xs) - img[ys, xs]) * a
            cover[ys, xs] = alpha >= 0.5
        covers.append(cover)
    visible = []
    above = np.zeros((size, size), dtype=bool)
    for cover in reversed(covers):
        visible.append(cover & ~above)
        above |= cover
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), visible[::-1]


def mask_box(mask: np.ndarray) -> list[float] | None:
    """sslsan.media.box_from_mask rounded to 6 decimals, as the manifests store it (None: empty mask)."""
    box = box_from_mask(mask)
    return None if box is None else [round(v, 6) for v in box]


def _place_objects(
    rng: np.random.Generator, cats: list[int], cfg: SynthConfig, min_sep: float
) -> list[SceneObject]:
    """Random poses; centres at least `min_sep * (r_i + r_j)` apart (best of 30 tries), so overlap is partial."""
    lo, hi = cfg.object_radius
    radii = rng.uniform(lo, hi, len(cats))
    best, best_gap = None, -np.inf
    for _ in range(30):
        centres = np.stack([rng.uniform(0.7 * radii, 1 - 0.7 * radii), rng.uniform(0.7 * radii, 1 - 0.7 * radii)], 1)
        gap = np.inf
        for i in range(len(cats)):
            for j in range(i + 1, len(cats)):
                d = np.hypot(*(centres[i] - centres[j]))
                gap = min(gap, d / (radii[i] + radii[j]))
        if gap >= min_sep:
            best = centres
            break
        if gap > best_gap:
            best, best_gap = centres, gap
    objs = []
    for k, c in enumerate(cats):
        base = CATEGORY_LIBRARY[c]
        objs.append(
            SceneObject(
                category=c,
                cx=float(best[k, 0]),
                cy=float(best[k, 1]),
                radius=float(radii[k]),
                angle=float(rng.uniform(0, 2 * np.pi)),
                hue=base.hue + float(rng.uniform(-8, 8)),
                sat=float(rng.uniform(0.6, 1.0)),
                val=float(rng.uniform(0.65, 1.0)),
                dark=float(rng.uniform(0.35, 0.6)),
                pattern_freq=float(rng.uniform(2.5, 4.0)),
            )
        )
    return objs


@dataclass
class Scene:
    """One rendered scene: the image, its objects (drawing order) and their visible masks."""

    image: np.ndarray
    objects: list[SceneObject]
    masks: list[np.ndarray]
    names: list[str] = field(default_factory=list)


def make_scene(
    rng: np.random.Generator,
    cfg: SynthConfig,
    n_objects: int,
    n_sounding: int,
    min_sep: float,
    cats: list[int] | None = None,
) -> Scene:
    """Distinct categories (random unless `cats` is given), random poses, `n_sounding` objects sounding."""
    if cats is None:
        cats = [int(c) for c in rng.choice(cfg.n_categories, size=n_objects, replace=False)]
    if len(cats) != n_objects or len(set(cats)) != n_objects:
        raise SynthError(f"a scene needs {n_objects} distinct categories, got {cats}")
    objs = _place_objects(rng, cats, cfg, min_sep)
    for k in rng.choice(n_objects, size=n_sounding, replace=False):
        objs[int(k)].sounding = True
    image, masks = render_scene(objs, rng, cfg.image_size)
    return Scene(image, objs, masks, [CATEGORY_LIBRARY[o.category].name for o in objs])
