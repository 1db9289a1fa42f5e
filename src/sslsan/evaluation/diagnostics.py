"""Diagnostics of saved maps.npz files: views that explain a metric, never metrics of the paper.

- `rf_aligned_ciou_a`: cIoU_A with each native map cell drawn at the centre of its receptive field
  instead of the reference protocol's half-pixel cell centre (the two differ by 15/32 of a cell
  for the stride-16 ResNet towers: 7.5 input pixels, right and down).
- `alignment_parts`: Table 1's Alignment and Magnitude split into what any image/audio pair shares
  (the centroids) and what a positive pair adds.
- `retrieval_biases`: Table 3's similarity matrix split into an image bias (row mean) and an audio
  bias (column mean); image->audio ranking is blind to the first, audio->image to the second.
- `category_alignment`: Alignment and Magnitude per sound category.
- `retrieval_by_scene`: image->audio top-1 against what the image shows: a scene with k objects of
  k categories, one sounding, matches the audio of any of them, and nothing in the image says which
  one sounds.
- `region_similarity`: the mean similarity of the positive (and offscreen) audio with the pixels of
  the sounding object and with the rest of the image; Table 1's image embedding is the spatial mean
  of the visual map, so the background counts in Alignment as much as its area.
- `negative_view`: which negative type sets the universal threshold, and offscreen pIA at the
  threshold the offscreen maps alone would set.

None of them changes a number of the reference protocol; the demo shows them only when asked
(`sslsan demo --diagnostics`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sslsan.evaluation.per_category import Maps, _arrays
from sslsan.evaluation.figures import maxima_from_maps
from sslsan.metrics import adaptive_threshold, alignment_magnitude, ciou, count_above, retrieval, upsample

STRIDE = 16  # input pixels per map cell of the ResNet-18 towers (layer4 stride 1)


def rf_shift_cells(stride: int = STRIDE) -> float:
    """How far (in cells) a cell's receptive-field centre sits before its half-pixel centre.

    Cell i of a stride-s conv stack with 'same' padding is centred on input pixel s*i, i.e. the
    continuous coordinate s*i + 0.5; the half-pixel convention draws it at s*(i + 0.5). The
    difference, (s/2 - 1/2) / s cells, is 15/32 for s = 16.
    """
    return (stride / 2 - 0.5) / stride


def rf_offset_px(map_size: int, gt_size: int = 224, stride: int = STRIDE) -> float:
    """The same difference in pixels of the `gt_size` ground truth (17.5 px for a 6 x 6 map at 224)."""
    return rf_shift_cells(stride) * gt_size / map_size


def _axis(n_in: int, n_out: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5 + shift
    src = np.clip(src, 0.0, n_in - 1.0)  # border clamp, as the reference upsampling
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float64)


def shifted_upsample(maps: np.ndarray, size: tuple[int, int], shift: float | tuple[float, float]) -> np.ndarray:
    """Bilinear upsampling of (N, h, w) maps to `size` with every cell drawn `shift` cells up and left of
    its half-pixel centre, one shift or (up, left) (0: the reference protocol's placement, up to float rounding)."""
    m = np.asarray(maps, dtype=np.float64)
    sy, sx = (shift, shift) if np.isscalar(shift) else shift
    y0, y1, wy = _axis(m.shape[1], size[0], sy)
    x0, x1, wx = _axis(m.shape[2], size[1], sx)
    rows = m[:, y0, :] * (1 - wy)[None, :, None] + m[:, y1, :] * wy[None, :, None]
    return (rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx).astype(np.float32)


def rf_aligned_ciou_a(maps: Maps, stride: int = STRIDE) -> float:
    """cIoU_A (percent of samples with adaptive-threshold cIoU >= 0.5) with each cell drawn at its
    receptive-field centre (`rf_shift_cells`). A diagnostic: the reference protocol's cIoU_A stays
    the number reported; this view says how much of it the cell placement costs."""
    return shifted_ciou_a(maps, rf_shift_cells(stride))


def shifted_ciou_a(maps: Maps, shift: float | tuple[float, float], chunk_size: int = 128) -> float:
    """cIoU_A with every map drawn `shift` cells up and left (one value, or (up, left)); see `shifted_upsample`."""
    arrays, _ = _arrays(maps)
    pos, gt = arrays["pos_maps"], arrays["gt_maps"]
    hits = []
    for start in range(0, len(pos), chunk_size):
        g = np.asarray(gt[start : start + chunk_size])
        up = shifted_upsample(pos[start : start + chunk_size], g.shape[1:], shift)
        value = np.atleast_1d(ciou(up, g, np.atleast_1d(adaptive_threshold(up, g)))[0])
        hits.append(value >= 0.5)
    return 100 * float(np.concatenate(hits).mean())


def alignment_parts(image_emb, audio_emb, labels=None) -> dict[str, float]:
    """Alignment and Magnitude (D11) with their parts.

    With unit rows v_i, a_i and centroids v̄, ā: the mean cosine over *all* image/audio pairs is
    v̄·ā ("unpaired"), so Alignment = unpaired + "paired_gain" (what a positive pair adds), and
    Magnitude² = |v̄|² + |ā|² - 2 v̄·ā. With `labels`, "same_category" is the mean cosine of an image
    with the other audios of its category (i ≠ j).
    """
    v = np.asarray(image_emb, dtype=np.float64)
    a = np.asarray(audio_emb, dtype=np.float64)
    out = alignment_magnitude(v, a)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    vbar, abar = v.mean(axis=0), a.mean(axis=0)
    out.update(unpaired=float(vbar @ abar), image_centroid=float(np.linalg.norm(vbar)),
               audio_centroid=float(np.linalg.norm(abar)))
    out["paired_gain"] = out["alignment"] - out["unpaired"]
    if labels is not None:
        labels = np.asarray(labels)
        same = labels[:, None] == labels[None, :]
        np.fill_diagonal(same, False)
        out["same_category"] = float((v @ a.T)[same].mean()) if same.any() else float("nan")
    return out


def category_alignment(maps: Maps) -> dict[str, dict[str, float]]:
    """{category: {"n", "alignment", "magnitude"}} of one maps.npz (its embeddings and labels)."""
    arrays, where = _arrays(maps)
    for key in ("image_emb", "audio_emb", "labels"):
        if key not in arrays:
            raise ValueError(f"{where}: per-category alignment needs the `{key}` array")
    labels = arrays["labels"].astype(str)
    out = {}
    for cat in sorted(set(labels) - {""}):
        sel = labels == cat
        out[cat] = {"n": int(sel.sum()), **alignment_magnitude(arrays["image_emb"][sel], arrays["audio_emb"][sel])}
    return out


def retrieval_biases(similarity, labels) -> dict[str, float]:
    """The similarity matrix S (images x audios) as S_ij = b_i + c_j + r_ij (b: row means, the image
    bias; c: column means minus the grand mean, the audio bias). Returns the std of each bias, the
    std of the rest, and P@1 both ways after removing each bias (a diagnostic: image->audio
    ranking does not change with b, audio->image does not change with c)."""
    s = np.asarray(similarity, dtype=np.float64)
    b = s.mean(axis=1, keepdims=True)
    c = s.mean(axis=0, keepdims=True) - s.mean()
    rest = s - b - c
    plain, no_image, no_audio = retrieval(s, labels, ks=(1,)), retrieval(s - b, labels, ks=(1,)), retrieval(s - c, labels, ks=(1,))
    return {"image_bias_std": float(b.std()), "audio_bias_std": float(c.std()), "rest_std": float(rest.std()),
            "i2a_P@1": plain["i2a_P@1"], "a2i_P@1": plain["a2i_P@1"],
            "a2i_P@1_without_image_bias": no_image["a2i_P@1"], "i2a_P@1_without_audio_bias": no_audio["i2a_P@1"]}


def region_similarity(maps: Maps, chunk_size: int = 128) -> dict[str, float]:
    """Mean map value (cosine of a pixel's feature with the audio) inside the ground truth ("object") and
    outside it ("background"), for each sample's own audio ("pos_*") and for its offscreen audio of the
    first repetition ("off_*"); maps upsampled as the protocol does. "object_share" is the mean GT area
    fraction. Samples with an empty GT are skipped."""
    arrays, _ = _arrays(maps)
    gt = arrays["gt_maps"]
    off = arrays["neg_maps_offscreen"][0] if "neg_maps_offscreen" in arrays else None
    sums = {k: [] for k in ("pos_object", "pos_background", "off_object", "off_background", "object_share")}
    for start in range(0, len(gt), chunk_size):
        g = np.asarray(gt[start : start + chunk_size]) > 0
        keep = g.any(axis=(1, 2))
        area = g.sum(axis=(1, 2))
        sums["object_share"].append((area / g[0].size)[keep])
        for name, m in (("pos", arrays["pos_maps"]), ("off", off)):
            if m is None:
                continue
            up = upsample(m[start : start + chunk_size], g.shape[1:]).astype(np.float64)
            obj = (up * g).sum(axis=(1, 2)) / np.maximum(area, 1)
            bg = (up * ~g).sum(axis=(1, 2)) / np.maximum(g[0].size - area, 1)
            sums[f"{name}_object"].append(obj[keep])
            sums[f"{name}_background"].append(bg[keep])
    return {k: float(np.concatenate(v).mean()) for k, v in sums.items() if v}


def negative_view(maps: Maps, threshold: float | None = None) -> dict[str, float]:
    """Per negative type t of one maps.npz: q3_<t>, the 3rd quartile of its per-sample maxima (U_th is the
    largest of them on the calibration split, D6), and sep_<t> = Q1(positive maxima) - q3_<t>; then
    pia_offscreen at `threshold` (default: the file's U_th) and pia_offscreen_own_q3, at the threshold the
    offscreen maps alone would set (their q3 on these maps). Percent for pIA."""
    arrays, _ = _arrays(maps)
    maxima = maxima_from_maps(arrays)
    q1 = float(np.quantile(maxima["positive"], 0.25))
    out: dict[str, float] = {}
    for t in ("silence", "noise", "offscreen"):
        out[f"q3_{t}"] = float(np.quantile(maxima[t], 0.75))
        out[f"sep_{t}"] = q1 - out[f"q3_{t}"]
    off = arrays["neg_maps_offscreen"]
    size = arrays["gt_maps"].shape[1:]
    npix = size[0] * size[1]
    thr = float(arrays["threshold"]) if threshold is None else float(threshold)
    out["pia_offscreen"] = 100 * float(count_above(off, thr, size).mean()) / npix
    out["pia_offscreen_own_q3"] = 100 * float(count_above(off, out["q3_offscreen"], size).mean()) / npix
    return out


def retrieval_by_scene(similarity, labels, scene_categories) -> dict[str, float]:
    """Image->audio top-1 (percent) split by the number k of object categories in the image
    (`scene_categories[i]`, e.g. the embedded benchmark's manifest field): "i2a_P@1" by label as Table 3,
    "i2a_P@1_any_visible" when the top audio's category is any category in the image, "i2a_P@1_k<k>" per k,
    "share_k<k>" the share of such images, and "bound" = mean 1/k, what a model that matches every
    visible object equally well (and cannot know from the image which one sounds) would score."""
    s = np.asarray(similarity, dtype=np.float64)
    labels = np.asarray(labels).astype(str)
    top = labels[np.argmax(np.where(np.isnan(s), -np.inf, s), axis=1)]  # ties: the lower index, as `retrieval`
    k = np.array([len(set(c)) for c in scene_categories])
    hit = top == labels
    visible = np.array([t in set(c) for t, c in zip(top, scene_categories)])
    out = {"i2a_P@1": 100 * float(hit.mean()), "i2a_P@1_any_visible": 100 * float(visible.mean()),
           "bound": 100 * float(np.mean(1.0 / np.maximum(k, 1)))}
    for n in sorted(set(k.tolist())):
        out[f"share_k{n}"] = 100 * float(np.mean(k == n))
        out[f"i2a_P@1_k{n}"] = 100 * float(hit[k == n].mean())
    return out


def embedding_report(arrays: Mapping[str, np.ndarray]) -> dict[str, float]:
    """`alignment_parts`, `region_similarity` and `retrieval_biases` of one maps.npz's arrays (those it holds)."""
    out: dict[str, float] = region_similarity(arrays)
    labels = arrays.get("labels")
    if "image_emb" in arrays and "audio_emb" in arrays:
        out.update(alignment_parts(arrays["image_emb"], arrays["audio_emb"], labels))
    if "similarity" in arrays and labels is not None:
        out.update(retrieval_biases(arrays["similarity"], labels))
    return out
