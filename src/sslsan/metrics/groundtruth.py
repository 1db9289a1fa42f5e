"""Ground-truth maps (224 x 224, float64) from boxes or segmentation masks (docs/metrics.md §1.4)."""

from __future__ import annotations

import numpy as np

from sslsan.metrics.common import MAP_SIZE, MetricsError

GT_MODES = ("union", "consensus")


def boxes_to_pixels(norm_boxes, size: int = MAP_SIZE) -> np.ndarray:
    """Normalised (xmin, ymin, xmax, ymax) boxes -> integer pixel boxes (K, 4).

    Each coordinate is clipped to [0, 1], multiplied by `size` and truncated (the VGG-SS rule).
    """
    boxes = np.asarray(norm_boxes, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    boxes = boxes.reshape(-1, boxes.shape[-1])
    if boxes.shape[-1] != 4:
        raise MetricsError(f"boxes: expected (xmin, ymin, xmax, ymax) rows, got shape {np.shape(norm_boxes)}")
    if not np.all(np.isfinite(boxes)):
        raise MetricsError("boxes: non-finite coordinate")
    return (np.clip(boxes, 0.0, 1.0) * size).astype(np.int64)  # int() truncates toward 0


def gt_map_from_boxes(boxes, mode: str = "union", size: int = MAP_SIZE) -> np.ndarray:
    """Integer pixel boxes (K, 4) -> (size, size) float64 GT map.

    Each box adds 1 on rows [ymin, ymax) and columns [xmin, xmax) (half-open; coordinates beyond
    the map are cut off, empty boxes add nothing). "union": pixels covered by any box are 1.
    "consensus" (Flickr annotators): min(count / 2, 1), so one box gives 0.5 and two give 1.
    No boxes gives an all-zero map (its cIoU is NaN or 0, see `ciou`).
    """
    if mode not in GT_MODES:
        raise MetricsError(f"gt mode: expected one of {GT_MODES}, got {mode!r}")
    arr = np.asarray(boxes)
    gt = np.zeros((size, size), dtype=np.float64)
    if arr.size == 0:
        return gt
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or np.any(arr != np.trunc(arr)):
            raise MetricsError("boxes: expected integer pixel coordinates (use boxes_to_pixels for normalised boxes)")
    arr = arr.astype(np.int64).reshape(-1, arr.shape[-1])
    if arr.shape[-1] != 4:
        raise MetricsError(f"boxes: expected (xmin, ymin, xmax, ymax) rows, got shape {np.shape(boxes)}")
    if np.any(arr < 0):
        # numpy slicing would wrap negative indices around; the reference never produces them
        raise MetricsError(f"boxes: negative pixel coordinate in {arr[np.any(arr < 0, axis=1)][0].tolist()}")
    for xmin, ymin, xmax, ymax in arr.tolist():
        gt[ymin:ymax, xmin:xmax] += 1.0
    if mode == "union":
        gt[gt > 0] = 1.0
    else:
        gt = np.minimum(gt / 2.0, 1.0)
    return gt


def gt_map_from_mask(mask, size: int = MAP_SIZE, threshold: float = 127) -> np.ndarray:
    """A segmentation mask (H, W) -> (size, size) float64 {0, 1} GT map.

    Nearest-neighbour resize with half-pixel centres (src = floor((dst + 0.5) * in / out), as
    PIL's NEAREST), then ``value > threshold`` (127 for 8-bit JPEG/PNG masks; bool masks count
    True as foreground). The reference never scores masks; this rule is ours (docs/metrics.md §1.4).
    """
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise MetricsError(f"mask: expected a 2-D (H, W) array, got shape {m.shape}")
    if m.dtype == bool:
        m = m.astype(np.uint8) * 255
    elif not np.issubdtype(m.dtype, np.number):
        raise MetricsError(f"mask: expected a numeric or bool array, got dtype {m.dtype}")
    rows = _nearest_index(m.shape[0], size)
    cols = _nearest_index(m.shape[1], size)
    return (m[rows[:, None], cols[None, :]] > threshold).astype(np.float64)


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    idx = np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp)
    return np.minimum(idx, n_in - 1)
