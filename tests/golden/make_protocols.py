"""Make tests/golden/golden_protocols.npz / .json: the original SLAVC and SSL-Align evaluation code on generated cases.

Runs, unchanged, the per-sample loop of SLAVC's `test.py` `validate` with its `utils.EvaluatorFull`
(stoneMo/SLAVC) and of SSL-Align's `test.py` `validate` with its `utils.Evaluator_iiou`
(kaistmm/SSLalignment), feeding them 224 x 224 maps through stand-in models (a model that returns the
next maps of the case, and a zero object-saliency map), and records every per-sample value and every
final number. `tests/test_protocols.py` checks `sslsan.metrics.extended` / `.instance` against them bit
for bit. The cases (compact inputs, stored in the .npz) cover ties, empty ground truth (non-sounding
pairs), all-equal confidences, cIoU exactly 0.5 (strict LocAcc vs inclusive precision), several
objects per image, an image whose cIoU is NaN, 1- and 2-sample sets and AP with a threshold stride > 1.

Usage (a throwaway venv: the original code imports torch, torchvision, sklearn, scipy, cv2, timm, av):
    python3 -m venv /tmp/protocols-orig-venv
    /tmp/protocols-orig-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 scikit-learn scipy \\
        opencv-python-headless timm av matplotlib tqdm
    git clone https://github.com/stoneMo/SLAVC /tmp/SLAVC                  # at 05b429c
    git clone https://github.com/kaistmm/SSLalignment /tmp/SSLalignment    # at e7ae3c5
    /tmp/protocols-orig-venv/bin/python tests/golden/make_protocols.py --slavc /tmp/SLAVC \\
        --sslalign /tmp/SSLalignment --out tests/golden/golden_protocols.npz

Only NumPy is imported at module level: the test imports `case_maps` / `case_gt` from here.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

SIZE = 224
BLOCK = 8  # maps are stored as (N, 28, 28) uint8 levels, each level an 8 x 8 block (ties by design)
MAX_BOXES = 10  # SLAVC pads boxes to 10 rows of -1


def case_maps(levels: np.ndarray, lo: float, hi: float, ramp: np.ndarray) -> np.ndarray:
    """(N, 224, 224) float32 maps: lo + (hi - lo) * level / 255 per 8 x 8 block, plus ramp[i] times a
    pixel ramp in [0, 1) (0 keeps the block ties). Every operation is float32, so it is exact anywhere."""
    base = np.repeat(np.repeat(levels, BLOCK, axis=1), BLOCK, axis=2).astype(np.float32) / np.float32(255)
    r = (np.arange(SIZE, dtype=np.float32)[:, None] * np.float32(SIZE) + np.arange(SIZE, dtype=np.float32)[None, :]) \
        / np.float32(SIZE * SIZE)
    return np.float32(lo) + np.float32(hi - lo) * base + ramp.astype(np.float32)[:, None, None] * r[None]


def case_gt(boxes: np.ndarray, consensus: bool) -> np.ndarray:
    """(N, 224, 224) float64 GT maps from pixel boxes (N, K, 4) padded with -1 rows: the union of the boxes,
    or the Flickr consensus min(count / 2, 1). (The script itself uses SLAVC's `bbox2gtmap`.)"""
    gt = np.zeros((len(boxes), SIZE, SIZE))
    for i, bb in enumerate(boxes):
        for x1, y1, x2, y2 in bb[bb[:, 0] >= 0].tolist():
            gt[i, y1:y2, x1:x2] += 1
    return np.minimum(gt / 2, 1) if consensus else (gt > 0).astype(np.float64)


# ------------------------------------------------------------------------------------------ the cases


def _random_boxes(rng, n_boxes: int, sizes: tuple[int, int] = (8, 120), jitter: bool = False) -> np.ndarray:
    """Pixel boxes padded to 10 rows of -1; `jitter`: annotators' boxes around one object (Flickr)."""
    out = -np.ones((MAX_BOXES, 4), np.int64)
    w, h = rng.integers(sizes[0], sizes[1] + 1, 2)
    x1, y1 = rng.integers(0, SIZE - w + 1), rng.integers(0, SIZE - h + 1)
    for k in range(n_boxes):
        if k and not jitter:
            w, h = rng.integers(sizes[0], sizes[1] + 1, 2)
            x1, y1 = rng.integers(0, SIZE - w + 1), rng.integers(0, SIZE - h + 1)
        d = rng.integers(-10, 11, 4) if jitter else np.zeros(4, np.int64)
        out[k] = np.clip([x1 + d[0], y1 + d[1], x1 + w + d[2], y1 + h + d[3]], 0, SIZE)
    return out


def _blob_levels(rng, boxes: np.ndarray, hit: bool, noise_max: int = 120) -> np.ndarray:
    """28 x 28 levels: noise, plus a bright region over the first box (hit) or beside it (miss)."""
    lev = rng.integers(0, noise_max, (SIZE // BLOCK, SIZE // BLOCK))
    if boxes[0, 0] >= 0:
        x1, y1, x2, y2 = (boxes[0] // BLOCK).tolist()
        if not hit:
            dx, dy = rng.integers(6, 22, 2)
            x1, x2, y1, y2 = (x1 + dx) % 28, (x1 + dx) % 28 + (x2 - x1), (y1 + dy) % 28, (y1 + dy) % 28 + (y2 - y1)
        lev[y1:y2 + 1, x1:x2 + 1] = rng.integers(150, 256, (len(lev[y1:y2 + 1]), len(lev[0, x1:x2 + 1])))
    elif rng.random() < 0.5:  # a confident map on a non-sounding pair
        a, b = rng.integers(0, 20, 2)
        lev[a:a + 8, b:b + 8] = rng.integers(150, 256)
    return lev.astype(np.uint8)


def slavc_cases(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    cases = []

    def mixed(name, n, tau, relative, consensus=False, lo=-1.0, hi=1.0, positives=0.5, sizes=(8, 120), noise_max=120):
        levels, boxes, ramp = [], [], []
        for i in range(n):
            visible = rng.random() < positives
            bb = (_random_boxes(rng, 3 if consensus else int(rng.integers(1, 4)), sizes, jitter=consensus) if visible
                  else -np.ones((MAX_BOXES, 4), np.int64))
            levels.append(_blob_levels(rng, bb, hit=rng.random() < 0.7, noise_max=noise_max))
            boxes.append(bb)
            ramp.append(rng.uniform(0.01, 0.2) if rng.random() < 0.5 else 0.0)
        cases.append(dict(name=name, levels=np.stack(levels), boxes=np.stack(boxes), ramp=np.asarray(ramp, np.float32),
                          lo=lo / tau * 0.9, hi=hi / tau * 0.9, tau=tau, relative=relative, consensus=consensus))

    # relative prediction marks half the image: boxes of 100-224 px sides make cIoU >= 0.5 reachable
    mixed("vggss_relative", 420, 0.03, True, sizes=(100, 224))  # N // 200 = 2: AP takes every second threshold
    mixed("vggss_absolute", 180, 0.03, False)
    mixed("cosine_absolute", 64, 1.0, False, lo=-0.2, hi=1.0, noise_max=30)  # tau = 1: scores = (cos + 1) / 2
    mixed("flickr_consensus", 60, 0.03, True, consensus=True, sizes=(110, 200))
    mixed("no_visible", 10, 0.03, True, positives=0.0)
    mixed("one_sample", 1, 0.03, True, positives=1.0, sizes=(120, 200))
    mixed("two_samples", 2, 0.03, True, positives=1.0, sizes=(120, 200))

    # all-equal confidences: constant maps (min-max leaves them as they are; everything is predicted)
    n = 12
    boxes = np.stack([_random_boxes(rng, 1) if i % 2 else -np.ones((MAX_BOXES, 4), np.int64) for i in range(n)])
    cases.append(dict(name="equal_confidence", levels=np.full((n, 28, 28), 200, np.uint8), boxes=boxes,
                      ramp=np.zeros(n, np.float32), lo=-20.0, hi=20.0, tau=0.03, relative=True, consensus=False))

    # cIoU exactly 0.5: the map is high on rows 0-127 x cols 0-199 (25,600 px, above the median), the GT box
    # rows 0-127 x cols 0-99 (12,800 px): inter 12,800, union 25,600 (strict LocAcc fails, >= passes)
    for relative in (True, False):
        n = 8
        lev = np.zeros((n, 28, 28), np.uint8)
        lev[:, :16, :25] = (180 + 9 * np.arange(n, dtype=np.uint8))[:, None, None]  # distinct confidences
        boxes = -np.ones((n, MAX_BOXES, 4), np.int64)
        boxes[:, 0] = [0, 0, 100, 128]
        boxes[n // 2:, 0] = [0, 0, 200, 128]  # these hit exactly: cIoU 1
        cases.append(dict(name=f"ciou_half_{'relative' if relative else 'absolute'}", levels=lev, boxes=boxes,
                          ramp=np.zeros(n, np.float32), lo=-30.0, hi=30.0, tau=0.03, relative=relative, consensus=False))
    return cases


def instance_cases(seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    cases = []

    def grouped(name, sizes, nan_image=False):
        levels, boxes, ramp, names = [], [], [], []
        for g, k in enumerate(sizes):
            for j in range(k):
                bb = _random_boxes(rng, 1, (60, 200))
                levels.append(_blob_levels(rng, bb, hit=rng.random() < 0.8))
                boxes.append(bb)
                ramp.append(rng.uniform(0.01, 0.3) if rng.random() < 0.5 else 0.0)
                names.append(f"img{g:03d}_scene_obj{j}")
        levels, boxes, ramp = np.stack(levels), np.stack(boxes), np.asarray(ramp, np.float32)
        if nan_image:  # a constant map with an empty GT: nothing predicted, cIoU 0/0
            levels[0] = 77
            boxes[0] = -1
            ramp[0] = 0.0
        cases.append(dict(name=name, levels=levels, boxes=boxes, ramp=ramp, lo=-1.0, hi=1.0, names=np.asarray(names)))

    grouped("is3_like", [2] * 120 + [1] * 10 + [3] * 10)
    grouped("nan_image", [2] * 6, nan_image=True)
    return cases


# ------------------------------------------------------------------------------------- running them


class _Maps:
    """A stand-in model: returns the next maps of the case (as (None, maps) like SLAVC's and SSL-Align's)."""

    def __new__(cls, maps):
        import torch

        class Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.maps, self.pos = torch.from_numpy(maps), 0

            def forward(self, image, spec, mode="train"):
                out = self.maps[self.pos:self.pos + image.shape[0]]
                self.pos += image.shape[0]
                return None, out

        return Model()


def _zero_saliency():
    import torch

    class Zero(torch.nn.Module):
        def forward(self, image):
            return torch.zeros(image.shape[0], 1, 7, 7)

    return Zero()


def _batches(maps, gt, boxes, names, batch: int = 16):
    import torch

    for k in range(0, len(maps), batch):
        b = len(maps[k:k + batch])
        yield (torch.zeros(b, 3, 2, 2), torch.zeros(b, 1, 2, 2),
               {"gt_map": torch.from_numpy(gt[k:k + batch]), "bboxes": torch.from_numpy(boxes[k:k + batch])},
               list(names[k:k + batch]))


def _check_identity_resize():
    """Same-size torch resizes, as the originals apply them to our 224 x 224 maps, change no value."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(case_maps(np.random.default_rng(5).integers(0, 256, (2, 28, 28)).astype(np.uint8), -3, 3,
                                   np.array([0.0, 0.1], np.float32)))[:, None]
    assert torch.equal(F.interpolate(x, size=(SIZE, SIZE), mode="bicubic", align_corners=True), x)
    assert torch.equal(F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=True), x)


def _purge(names):
    for m in list(sys.modules):
        if m.split(".")[0] in names:
            del sys.modules[m]


def run_slavc(checkout: Path, cases: list[dict]) -> dict[str, np.ndarray]:
    """SLAVC's test.validate on every case; the AV evaluator's lists and final numbers."""
    sys.path.insert(0, str(checkout))
    _purge({"utils", "datasets", "test", "model", "audio_io"})
    cwd = os.getcwd()
    os.chdir(checkout)
    try:
        import test as slavc_test  # SLAVC's test.py (first on sys.path)
        import utils as slavc_utils
        from datasets import bbox2gtmap

        made = []

        class Recording(slavc_utils.EvaluatorFull):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                made.append(self)

        # test.py sees a copy of the utils module whose EvaluatorFull records; utils' own name stays (its super() calls)
        slavc_test.utils = types.SimpleNamespace(**{**vars(slavc_utils), "EvaluatorFull": Recording})
        out = {}
        for c in cases:
            maps = case_maps(c["levels"], c["lo"], c["hi"], c["ramp"])
            fmt = "flickr" if c["consensus"] else "vggss"
            gt = np.stack([bbox2gtmap([b for b in bb.tolist() if b[0] >= 0], fmt) if (bb[:, 0] >= 0).any()
                           else np.zeros((SIZE, SIZE)) for bb in c["boxes"]])
            assert np.array_equal(gt, case_gt(c["boxes"], c["consensus"])), c["name"]
            args = argparse.Namespace(tau=c["tau"], alpha=0.9, relative_prediction=c["relative"], pred_size=0.5,
                                      pred_thr=0.5, gpu=None, save_visualizations=False)
            names = [f"s{i:04d}" for i in range(len(maps))]
            made.clear()
            with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
                slavc_test.validate(list(_batches(maps, gt, c["boxes"], names)), _Maps(maps), _zero_saliency(), tmp, args)
            ev = made[0]  # evaluator_av (then obj, av_obj)
            bb, ciou, conf = ev.bb_list, ev.ciou_list, ev.confidence_list
            stats = ev.finalize_stats()
            # the F1 list of finalize_stats (printed there only as "%.1f" strings), its own expression
            conf_thr = list(sorted(conf))[::max(1, len(conf) // 10)]
            pr = [ev.calc_precision_recall(bb, ciou, conf, thr, 0.5) for thr in conf_thr]
            f1 = [2 * r * p / (r + p) if r + p > 0 else 0. for p, r in pr]
            with np.errstate(all="ignore"):
                locacc = ev.precision_at_50()
            p = f"slavc/{c['name']}/"
            out.update({
                p + "levels": c["levels"], p + "boxes": c["boxes"], p + "ramp": c["ramp"],
                p + "params": np.array([c["lo"], c["hi"], c["tau"], float(c["relative"]), float(c["consensus"])]),
                p + "bb": np.asarray(bb, np.int64), p + "ciou": np.asarray(ciou, np.float64),
                p + "confidence": np.asarray(conf), p + "ap": np.float64(ev.calc_ap(bb, ciou, conf, 0.5)),
                p + "f1": np.asarray(f1, np.float64), p + "f1_text": np.asarray(stats["F1-all@50"]),
                p + "locacc": np.float64(locacc),
                p + "stats": np.asarray(json.dumps({k: (v if isinstance(v, str) else float(v)) for k, v in stats.items()
                                                    if isinstance(v, (str, int, float, np.integer, np.floating))})),
            })
        return out
    finally:
        os.chdir(cwd)
        sys.path.remove(str(checkout))
        _purge({"utils", "datasets", "test", "model", "audio_io"})


def run_sslalign(checkout: Path, cases: list[dict]) -> dict[str, np.ndarray]:
    """SSL-Align's test.validate (taken from its test.py by name: the module's own imports need every other
    model of that repository) with its utils.Evaluator_iiou."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    sys.path.insert(0, str(checkout))
    _purge({"utils", "datasets", "test", "model", "audio_io"})
    try:
        import utils as align_utils

        made = []

        class Recording(align_utils.Evaluator_iiou):
            def __init__(self):
                super().__init__()
                self.results = {}
                made.append(self)

        def recorded(name):
            def method(self):
                self.results[name] = r = getattr(align_utils.Evaluator_iiou, name)(self)
                return r
            return method

        for name in ("finalize_cIoU", "finalize_AUC", "finalize_IAUC", "finalize_IAUC_adap"):
            setattr(Recording, name, recorded(name))

        tree = ast.parse((checkout / "test.py").read_text())
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "validate")
        ns = {"utils": types.SimpleNamespace(**{**vars(align_utils), "Evaluator_iiou": Recording}), "np": np, "F": F, "torch": torch, "tqdm": tqdm, "os": os}
        exec(compile(ast.Module(body=[fn], type_ignores=[]), str(checkout / "test.py"), "exec"), ns)
        out = {}
        for c in cases:
            maps = case_maps(c["levels"], c["lo"], c["hi"], c["ramp"])
            gt = case_gt(c["boxes"], False)
            args = argparse.Namespace(alpha=0.4, visualize=False, gpu=None)
            made.clear()
            with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
                ns["validate"](list(_batches(maps, gt, c["boxes"], c["names"])), _Maps(maps), _zero_saliency(), None, args)
            ev = made[0]  # evaluator_av
            ciou, ciou_adap, iiou, iiou_adap = ev.results["finalize_cIoU"]
            auc, auc_adap = ev.results["finalize_AUC"]
            p = f"instance/{c['name']}/"
            out.update({
                p + "levels": c["levels"], p + "boxes": c["boxes"], p + "ramp": c["ramp"], p + "names": c["names"],
                p + "params": np.array([c["lo"], c["hi"]]),
                p + "sample_ciou": np.asarray(ev.ciou, np.float64), p + "sample_ciou_adap": np.asarray(ev.ciou_adap, np.float64),
                p + "final": np.array([ciou, ciou_adap, iiou, iiou_adap, auc, auc_adap, ev.results["finalize_IAUC"],
                                       ev.results["finalize_IAUC_adap"]], np.float64),
            })
        return out
    finally:
        sys.path.remove(str(checkout))
        _purge({"utils", "datasets", "test", "model", "audio_io"})


def _commit(checkout: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slavc", required=True, type=Path, help="checkout of stoneMo/SLAVC")
    p.add_argument("--sslalign", required=True, type=Path, help="checkout of kaistmm/SSLalignment")
    p.add_argument("--out", required=True, type=Path, help="the .npz to write (a .json with the provenance beside it)")
    args = p.parse_args()
    _check_identity_resize()
    arrays = {**run_slavc(args.slavc.resolve(), slavc_cases()), **run_sslalign(args.sslalign.resolve(), instance_cases())}
    np.savez_compressed(args.out, **arrays)
    import sklearn
    import torch

    meta = {
        "made_by": "tests/golden/make_protocols.py",
        "slavc": {"repository": "stoneMo/SLAVC", "commit": _commit(args.slavc),
                  "ran": "test.validate with utils.EvaluatorFull (evaluator_av); calc_ap, precision_at_50, finalize_stats"},
        "sslalign": {"repository": "kaistmm/SSLalignment", "commit": _commit(args.sslalign),
                     "ran": "test.validate (taken from test.py by name) with utils.Evaluator_iiou (evaluator_av)"},
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__, "torch": torch.__version__,
                     "scikit-learn": sklearn.__version__},
        "cases": {"slavc": [c["name"] for c in slavc_cases()], "instance": [c["name"] for c in instance_cases()]},
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out} ({len(arrays)} arrays)")


if __name__ == "__main__":
    main()
