"""Score saved maps: the maps.npz format and every metric of the paper computed from it alone.

maps.npz layout (N test samples, R repetitions, native map size h x w, embedding size C):

==================== ============== ========= ========================================================
array                shape          dtype     meaning
==================== ============== ========= ========================================================
ids                  (N,)           str (<U)  sample ids, in manifest order                   REQUIRED
pos_maps             (N, h, w)      float32   raw similarity map of each image with its own audio REQUIRED
neg_maps_silence     (R, N, h, w)   float32   map with silent audio, per repetition             REQUIRED
neg_maps_noise       (R, N, h, w)   float32   map with N(0, 1) noise audio                      REQUIRED
neg_maps_offscreen   (R, N, h, w)   float32   map with another clip's audio (offscreen_index)   REQUIRED
gt_maps              (N, 224, 224)  uint8     ground truth, 1 = sounding (any float GT in [0, 1] REQUIRED
                                              is also accepted, e.g. Flickr consensus 0.5)
threshold            ()             float64   universal threshold; optional if given to `score`
labels               (N,)           str       category per sample, "" if unknown: retrieval labels
image_emb            (N, C)         float32   image embeddings (L2-normalised): Magnitude/Alignment
audio_emb            (N, C)         float32   audio embeddings of the positive clips
similarity           (N, N)         float32   S[i, j] = similarity of image i and audio j: retrieval
offscreen_index      (R, N)         int64     row r, col i: index of sample i's offscreen clip
repetition_seeds     (R,)           int64     seed of each repetition
upsample             ()             str       how maps reach 224 x 224 (metrics.resample.UPSAMPLE_MODES);
                                              default "bilinear" (cv2 half-pixel, the reference protocol)
groups               (N,)           str       image of each sample (IS3): SSL-Align's iIoU / iAUC
nonsounding_ids      (M,)           str       ids of the non-sounding pairs of an extended test set
nonsounding_maps     (M, h, w)      float32   map of each non-sounding pair (image, its listed sound):
                                              SLAVC's AP / max-F1 / LocAcc with the N positives
relative_prediction  ()             bool      SLAVC's --relative_prediction (default true)
map_range            (2,)           float64   the values the map can take (MapSpec.range): SLAVC's score
                                              bounds (default (0, 1))
==================== ============== ========= ========================================================

Maps are the model's output at its own resolution (any h x w, e.g. 14 x 14 or 7 x 7); they are
upsampled to 224 x 224 (`upsample`; by default bilinear, half-pixel) and thresholded with a strict `>` as in the reference
protocol (docs/metrics.md). A negative of shape (N, h, w) is repeated R times (R = that of the other
negatives, else 1). Per-sample maxima for Separability and for the universal threshold are taken
on the native maps. Silence does not depend on the repetition; store R identical copies. Optional
arrays only switch on their tables (Table 1 needs image_emb + audio_emb, Table 3 similarity + labels,
SLAVC's extended protocol nonsounding_maps, SSL-Align's instance protocol groups).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from sslsan import metrics as M
from sslsan.evaluation.errors import MapsFileError, check_threshold
from sslsan.evaluation.negatives import NEGATIVE_TYPES
from sslsan.utils.io import atomic_savez

REQUIRED = ("ids", "pos_maps", "neg_maps_silence", "neg_maps_noise", "neg_maps_offscreen", "gt_maps")
OPTIONAL = ("threshold", "labels", "image_emb", "audio_emb", "similarity", "offscreen_index", "repetition_seeds",
            "upsample", "groups", "nonsounding_ids", "nonsounding_maps", "relative_prediction", "map_range")
GT_SIZE = 224


def result_arrays(res, gt: np.ndarray, threshold: float, upsample: str = "bilinear") -> dict[str, np.ndarray]:
    """The maps.npz arrays of an InferenceResult (see the module docstring); `upsample`: the model's mode."""
    arrays = {
        "ids": res.ids,
        "labels": res.labels,
        "pos_maps": res.pos_maps.astype(np.float32, copy=False),
        **{f"neg_maps_{t}": res.neg_maps[t].astype(np.float32, copy=False) for t in NEGATIVE_TYPES},
        "gt_maps": gt,
        "threshold": np.float64(threshold),
        "image_emb": res.image_emb,
        "audio_emb": res.audio_emb,
        "offscreen_index": res.offscreen.index.astype(np.int64),
        "repetition_seeds": np.asarray(res.repetition_seeds, dtype=np.int64),
        "upsample": np.array(upsample),
    }
    if res.similarity is not None:
        arrays["similarity"] = res.similarity
    return arrays


def protocol_arrays(groups: list[str] | None, nonsounding_ids: list[str] | None = None,
                    nonsounding_maps: np.ndarray | None = None, relative_prediction: bool = True,
                    map_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, np.ndarray]:
    """The optional maps.npz arrays of the other protocols: `groups` (SSL-Align's iIoU), the non-sounding
    pairs, the prediction setting and the map's range (SLAVC's extended protocol); None leaves a protocol out."""
    arrays: dict[str, np.ndarray] = {}
    if groups is not None:
        arrays["groups"] = np.asarray(groups, dtype=str)
    if nonsounding_maps is not None:
        arrays["nonsounding_ids"] = np.asarray(nonsounding_ids, dtype=str)
        arrays["nonsounding_maps"] = nonsounding_maps.astype(np.float32, copy=False)
        arrays["relative_prediction"] = np.bool_(relative_prediction)
        arrays["map_range"] = np.asarray(map_range, dtype=np.float64)
    return arrays


def save_maps(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Validate and write a maps.npz atomically (compressed)."""
    validate_arrays(arrays, str(path))
    return atomic_savez(path, **arrays)


def load_maps(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate a maps.npz; errors name the file and the missing/inconsistent arrays."""
    path = Path(path)
    if not path.exists():
        raise MapsFileError(f"{path}: maps file not found")
    if path.is_dir():
        raise MapsFileError(f"{path}: is a folder, not a maps.npz file")
    if not zipfile.is_zipfile(path):
        raise MapsFileError(f"{path}: not an .npz file (not a zip archive of arrays; layout: docs/maps_npz.md)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise MapsFileError(f"{path}: not a readable .npz file ({exc})") from None
    # an (N, h, w) negative (e.g. silence, the same in every repetition) is repeated R times
    reps = [arrays[f"neg_maps_{t}"].shape[0] for t in NEGATIVE_TYPES if f"neg_maps_{t}" in arrays and arrays[f"neg_maps_{t}"].ndim == 4]
    for t in NEGATIVE_TYPES:
        k = f"neg_maps_{t}"
        if k in arrays and arrays[k].ndim == 3:
            arrays[k] = np.repeat(arrays[k][None], max(reps, default=1), axis=0)
    validate_arrays(arrays, str(path))
    return arrays


def validate_arrays(a: dict[str, np.ndarray], where: str) -> None:
    missing = [k for k in REQUIRED if k not in a]
    if missing:
        raise MapsFileError(f"{where}: missing array(s) {', '.join(missing)} (layout: docs/maps_npz.md)")
    n = len(a["ids"])
    if n == 0:
        raise MapsFileError(f"{where}: no samples (ids is empty)")
    bad = []
    pos = a["pos_maps"]
    if pos.ndim != 3 or pos.shape[0] != n:
        bad.append(f"pos_maps has shape {pos.shape}, expected ({n}, h, w)")
    reps = {a[f"neg_maps_{t}"].shape[0] for t in NEGATIVE_TYPES if a[f"neg_maps_{t}"].ndim == 4}
    for t in NEGATIVE_TYPES:
        m = a[f"neg_maps_{t}"]
        if m.ndim != 4 or m.shape[1:] != pos.shape or len(reps) != 1:
            bad.append(f"neg_maps_{t} has shape {m.shape}, expected (R, {', '.join(map(str, pos.shape))}) with one R for all types")
    if a["gt_maps"].shape != (n, GT_SIZE, GT_SIZE):
        bad.append(f"gt_maps has shape {a['gt_maps'].shape}, expected ({n}, {GT_SIZE}, {GT_SIZE})")
    for k, shape in (("labels", (n,)), ("similarity", (n, n)), ("groups", (n,))):
        if k in a and a[k].shape != shape:
            bad.append(f"{k} has shape {a[k].shape}, expected {shape}")
    if ("nonsounding_maps" in a) != ("nonsounding_ids" in a):
        bad.append("nonsounding_maps and nonsounding_ids must be given together")
    elif "nonsounding_maps" in a:
        ns, ids = a["nonsounding_maps"], a["nonsounding_ids"]
        if ns.ndim != 3 or ns.shape[1:] != pos.shape[1:] or ns.shape[0] == 0 or ids.shape != ns.shape[:1]:
            bad.append(f"nonsounding_maps {ns.shape} / nonsounding_ids {ids.shape} must be (M, {', '.join(map(str, pos.shape[1:]))}) "
                       "and (M,), M >= 1")
    if "map_range" in a and not (a["map_range"].shape == (2,) and np.issubdtype(a["map_range"].dtype, np.floating)
                                 and np.all(np.isfinite(a["map_range"])) and a["map_range"][0] < a["map_range"][1]):
        bad.append(f"map_range must be two finite floats lo < hi, got {a['map_range'].tolist()}")
    if "relative_prediction" in a and (a["relative_prediction"].size != 1 or a["relative_prediction"].dtype != bool):
        bad.append(f"relative_prediction must be a boolean scalar, has dtype {a['relative_prediction'].dtype} "
                   f"and shape {a['relative_prediction'].shape}")
    if ("image_emb" in a) != ("audio_emb" in a):
        bad.append("image_emb and audio_emb must be given together")
    elif "image_emb" in a and (a["image_emb"].shape != a["audio_emb"].shape or a["image_emb"].shape[0] != n):
        bad.append(f"image_emb {a['image_emb'].shape} / audio_emb {a['audio_emb'].shape} must both be ({n}, C)")
    if "threshold" in a and a["threshold"].size != 1:
        bad.append(f"threshold must be a scalar, has shape {a['threshold'].shape}")
    elif "threshold" in a and not 0.0 <= float(a["threshold"]) <= 1.0:  # NaN fails too
        bad.append(f"threshold {float(a['threshold'])} is not in [0, 1]")
    if "upsample" in a and str(a["upsample"]) not in M.UPSAMPLE_MODES:
        bad.append(f"upsample {str(a['upsample'])!r} is not one of {M.UPSAMPLE_MODES}")
    if not bad:  # values, once the shapes are right: nothing is scored silently from NaN or out-of-range data
        bad += _value_problems(a)
    if bad:
        raise MapsFileError(f"{where}: " + "; ".join(bad))


def _value_problems(a: dict[str, np.ndarray]) -> list[str]:
    """Non-finite maps/embeddings and ground truth outside [0, 1], counted per array.

    min/max first (NaN propagates through both), so a clean file costs no temporary arrays."""
    bad = []
    for k in ("pos_maps", *(f"neg_maps_{t}" for t in NEGATIVE_TYPES), "image_emb", "audio_emb", "similarity", "nonsounding_maps"):
        if k not in a or a[k].size == 0:
            continue
        if not np.issubdtype(a[k].dtype, np.number):
            bad.append(f"{k} has dtype {a[k].dtype}, expected float")
        elif not (np.isfinite(np.min(a[k])) and np.isfinite(np.max(a[k]))):
            bad.append(f"{k} holds {a[k].size - int(np.count_nonzero(np.isfinite(a[k])))} NaN or infinite value(s)")
    gt = a["gt_maps"]
    if not (np.issubdtype(gt.dtype, np.number) or gt.dtype == bool):
        bad.append(f"gt_maps has dtype {gt.dtype}, expected uint8 (or float in [0, 1])")
    elif gt.size and not (0 <= np.min(gt) and np.max(gt) <= 1):
        outside = gt.size - int(np.count_nonzero((gt >= 0) & (gt <= 1)))  # NaN counts as outside
        bad.append(f"gt_maps holds {outside} value(s) outside [0, 1] (1 = sounding pixel)")
    return bad


# ------------------------------------------------------------------------------------ reference maps

CENTRE_SIGMA = 0.25  # of the image side: the 0.5 level set is a centred disk covering ~27 % of the image


def reference_maps(size: int = GT_SIZE) -> dict[str, np.ndarray]:
    """Chance baselines at 224 x 224: a uniform map and an isotropic Gaussian centre prior (peak 1)."""
    c = (np.arange(size, dtype=np.float64) + 0.5) / size - 0.5
    d2 = c[:, None] ** 2 + c[None, :] ** 2
    return {
        "uniform": np.ones((size, size), dtype=np.float32),
        "centre": np.exp(-d2 / (2 * CENTRE_SIGMA**2)).astype(np.float32),
    }


REFERENCE_THRESHOLD = 0.5  # reference maps live in [0, 1]: 0.5 is their "universal" threshold


def reference_scores(gt: np.ndarray) -> dict[str, dict[str, float]]:
    """cIoU/AUC (universal at 0.5, and adaptive) of the chance maps on the same GT, in percent.

    uniform: everything > 0.5 → the whole image (cIoU = GT area fraction); its adaptive threshold
    selects nothing (ties are dropped, docs/metrics.md §2.2). centre: the disk > 0.5; adaptively, the
    centred disk with the GT's area.
    """
    out = {}
    for name, ref in reference_maps().items():
        cu, ca = [], []
        for k in range(0, len(gt), REFERENCE_CHUNK):
            g = gt[k:k + REFERENCE_CHUNK]
            pred = np.broadcast_to(ref, g.shape)
            cu.append(M.ciou(pred, g, REFERENCE_THRESHOLD)[0])
            ca.append(M.ciou(pred, g, M.adaptive_threshold(pred, g))[0])
        # NaN (empty GT and prediction) -> 0 for the universal mean, kept (= failure) adaptively, as the reference
        cu_all = np.nan_to_num(np.concatenate([np.atleast_1d(c) for c in cu]), nan=0.0)
        ca_all = np.concatenate([np.atleast_1d(c) for c in ca])
        out[name] = {
            "ciou_u": 100.0 * float(np.mean(cu_all)),
            "auc_u": 100.0 * float(M.auc(cu_all)),
            "ciou_a": 100.0 * float(np.mean(ca_all >= 0.5)),
            "auc_a": 100.0 * float(M.auc(ca_all)),
        }
    return out


REFERENCE_CHUNK = 256  # samples per vectorised block (bounds the float64 GT copy to ~100 MB)


# -------------------------------------------------------------------------------------------- scoring


def _clean(v: Any) -> Any:
    """Python floats for JSON; NaN/inf become None so metrics.json is strict JSON."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    return v


def score_arrays(a: dict[str, np.ndarray], threshold: float | None = None) -> dict[str, Any]:
    """Every metric of Tables 1-3 (and the chance baselines) from maps.npz arrays.

    `threshold` overrides the file's own. Returns JSON-ready values (percent where the paper uses
    percent; NaN as None). evaluate and score both go through here, so they agree exactly.
    """
    validate_arrays(a, "maps")
    if threshold is None:
        if "threshold" not in a:
            raise MapsFileError("maps: no 'threshold' array; pass a threshold (score --threshold VALUE)")
        threshold = float(a["threshold"])
    threshold = check_threshold(threshold)
    gt = a["gt_maps"]  # uint8 as stored: the metrics accept any real dtype (memory: N x 224 x 224)
    neg = {t: a[f"neg_maps_{t}"] for t in NEGATIVE_TYPES}
    pos_max = a["pos_maps"].max(axis=(-2, -1))
    neg_max = {t: m.max(axis=(-2, -1)) for t, m in neg.items()}
    all_neg = np.concatenate([m.ravel() for m in neg_max.values()])
    mode = str(a["upsample"]) if "upsample" in a else "bilinear"

    out: dict[str, Any] = {
        "n_samples": int(len(a["ids"])),
        "repetitions": int(neg["silence"].shape[0]),
        "map_size": list(a["pos_maps"].shape[1:]),
        "upsample": mode,
        "threshold": threshold,
        "localization": dict(M.localization_metrics(a["pos_maps"], gt, neg, threshold, upsample_mode=mode)),
        "separability": {
            "sep": float(M.separability(pos_max, all_neg)),
            **{f"sep_{t}": float(M.separability(pos_max, m.ravel())) for t, m in neg_max.items()},
        },
        "max_similarity": {
            name: {"mean": float(np.mean(v)), "median": float(np.median(v)), "q1": float(np.quantile(v, 0.25)), "q3": float(np.quantile(v, 0.75))}
            for name, v in {"positive": pos_max, **{t: m.ravel() for t, m in neg_max.items()}}.items()
        },
        "reference_maps": reference_scores(gt),
    }
    if "image_emb" in a:
        out["alignment"] = dict(M.alignment_magnitude(a["image_emb"], a["audio_emb"]))
    out.update(protocol_metrics(a))
    if "similarity" in a and "labels" in a:
        labels = a["labels"]
        if np.all(labels == ""):
            out["retrieval_note"] = "no categories in the manifest: retrieval skipped"
        else:
            out["retrieval"] = dict(M.retrieval(a["similarity"], labels))
    return _clean(out)


def protocol_metrics(a: dict[str, np.ndarray]) -> dict[str, Any]:
    """The other protocols' metrics where maps.npz has what they need (docs/metrics.md §7-8):
    "extended" (SLAVC: positives + non-sounding pairs) and "instance" (SSL-Align: samples grouped by image)."""
    out: dict[str, Any] = {}
    mode = str(a["upsample"]) if "upsample" in a else "bilinear"
    if "nonsounding_maps" in a:
        lo, hi = (float(v) for v in a["map_range"]) if "map_range" in a else (0.0, 1.0)
        protocol = M.ExtendedProtocol(relative_prediction=bool(a.get("relative_prediction", True)), bounds=(lo, hi))
        out["extended"] = M.extended_metrics(a["pos_maps"], a["gt_maps"], a["nonsounding_maps"], protocol,
                                             upsample_mode=mode)
    if "groups" in a:
        out["instance"] = M.instance_protocol_metrics(a["pos_maps"], a["gt_maps"], a["groups"], upsample_mode=mode)
    return out


def score_maps(path: str | Path, threshold: float | None = None) -> dict[str, Any]:
    """Load a maps.npz (layout in this module's docstring / docs/maps_npz.md) and score it."""
    return score_arrays(load_maps(path), threshold)
