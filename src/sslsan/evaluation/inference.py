"""Batched model inference over a test manifest: positive and negative maps, maxima, embeddings.

Two passes, so that each image's features are computed once and never stored:
1. audio: the embedding of every clip (positives, reused as offscreen audio), of silence (one clip:
   it is the same for every sample) and of the noise of every (repetition, sample);
2. images: per batch, the visual feature map, then every map is a dot product of it with an audio
   embedding: positive, silence, noise and offscreen for all R repetitions, plus one row block of the
   image x audio max-similarity matrix used for retrieval (DECISIONS D12).

Every map comes from the model's own `pair_map` / `cross_map` (sslsan.methods.base.AVModel), the one
place a method defines it; maps are raw and native-resolution (docs/metrics.md §1.1): no
normalisation, no upsampling. What the model needs (front-end, image size and transform) comes from
the `LoadedModel`'s inference spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sslsan.audio import AudioConfig, place_window, warn_if_short
from sslsan.data.datasets import AVDataset
from sslsan.data.manifest import Manifest
from sslsan.data.transforms import ImageEvalTransform
from sslsan.evaluation.errors import EvaluationError, check_at_least
from sslsan.evaluation.eval_config import EvaluationConfig
from sslsan.evaluation.negatives import (
    NEGATIVE_TYPES,
    OffscreenAssignment,
    assign_offscreen,
    negative_spectrograms,
)
from sslsan.media import ImageError, is_video, load_audio, load_image, video_frame
from sslsan.media import load_mask as read_mask
from sslsan.methods.checkpoint import LoadedModel
from sslsan.metrics import boxes_to_pixels, gt_map_from_boxes, gt_map_from_mask

GT_SIZE = 224


@dataclass
class InferenceResult:
    """Everything the metrics need, as NumPy arrays (layout: see sslsan.evaluation.scoring)."""

    ids: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) str, "" where the manifest has no category
    pos_maps: np.ndarray  # (N, h, w) float32
    neg_maps: dict[str, np.ndarray]  # type -> (R, N, h, w) float32
    image_emb: np.ndarray  # (N, C) float32, spatial mean of the visual map, L2-normalised (D11)
    audio_emb: np.ndarray  # (N, C) float32
    similarity: np.ndarray | None  # (N, N) float32, image i x audio j max-pooled cosine map (D12)
    offscreen: OffscreenAssignment
    repetition_seeds: list[int]
    extra: dict = field(default_factory=dict)

    @property
    def pos_max(self) -> np.ndarray:
        return self.pos_maps.max(axis=(-2, -1))

    def neg_max(self) -> dict[str, np.ndarray]:
        return {t: m.max(axis=(-2, -1)) for t, m in self.neg_maps.items()}


class _ImageSet(Dataset):
    """Eval-transformed images of a manifest (the audio pass reads clips through AVDataset)."""

    def __init__(self, manifest: Manifest, transform: ImageEvalTransform):
        self.manifest = manifest
        self.transform = transform

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, i: int) -> dict:
        img = load_image(self.manifest.resolve(self.manifest[i].image))
        return {"index": i, "image": self.transform(img)}


def load_mask(path: str | Path, size: int = GT_SIZE) -> np.ndarray:
    """Binary (size, size) uint8 GT from a mask image (metrics.gt_map_from_mask: nearest resize, > 127)."""
    try:
        mask = read_mask(path)
    except ImageError as exc:
        raise EvaluationError(f"{exc} (ground-truth mask)") from None
    return gt_map_from_mask(mask, size=size).astype(np.uint8)


def gt_maps(manifest: Manifest, gt: str = "boxes") -> np.ndarray:
    """(N, 224, 224) ground truth: uint8 union of the boxes (reference protocol) or the mask; float32
    {0, 0.5, 1} for "consensus" (Flickr: each annotator's box adds 1/2, capped at 1)."""
    out = np.zeros((len(manifest), GT_SIZE, GT_SIZE), dtype=np.float32 if gt == "consensus" else np.uint8)
    for i, s in enumerate(manifest):
        if gt == "mask":
            if not s.mask:
                raise EvaluationError(f"{manifest.path}: sample {s.id!r} has no mask but the dataset is scored on masks")
            out[i] = load_mask(manifest.resolve(s.mask))
        elif gt in ("boxes", "consensus"):
            if s.boxes:
                pix = boxes_to_pixels(np.asarray(s.boxes, dtype=np.float64))
                g = gt_map_from_boxes(pix, mode="union" if gt == "boxes" else "consensus")
                out[i] = g > 0 if gt == "boxes" else g
        else:
            raise ValueError(f"unknown ground-truth kind {gt!r}; expected 'boxes', 'consensus' or 'mask'")
    return out


def box_fixes(manifest: Manifest) -> dict[str, int]:
    """What the box ground truth of `manifest` fixes, counted: boxes with a coordinate outside [0, 1]
    (clipped to the image) and boxes with x2 < x1 or y2 < y1 (inverted: they add no GT pixel)."""
    boxes = np.asarray([b for s in manifest for b in s.boxes], dtype=np.float64).reshape(-1, 4)
    return {"clipped_to_image": int(np.count_nonzero(((boxes < 0) | (boxes > 1)).any(axis=1))),
            "inverted": int(np.count_nonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])))}


def _loader(ds: Dataset, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)


def _pair_maps(model, feat: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """feat (B, D, h, w) with emb (R, B, E) → (R, B, h, w): each image with its own clip, per row r."""
    return torch.stack([model.pair_map(feat, e)[:, 0] for e in emb])


def _max_similarity(model, feat: torch.Tensor, audio: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """S[b, j] = max over (h, w) of the map of image b with clip j, chunked over j to bound memory."""
    parts = [model.cross_map(feat, audio[k:k + chunk]).amax(dim=(-2, -1)) for k in range(0, audio.shape[0], chunk)]
    return torch.cat(parts, dim=1)


def _run(step, where: str):
    """Run a model call; a shape error becomes a one-line checkpoint/data mismatch error."""
    try:
        return step()
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        raise EvaluationError(f"{where}: the checkpoint cannot process this data ({msg}); "
                              "are the checkpoint's audio front-end / image size the ones it was trained with?") from None


@torch.inference_mode()
def run_inference(
    localizer: LoadedModel,
    manifest: Manifest,
    *,
    repetitions: int = EvaluationConfig.repetitions,
    seed: int = EvaluationConfig.seed,
    device: str | torch.device = "cpu",
    batch_size: int = EvaluationConfig.batch_size,
    workers: int = EvaluationConfig.workers,
    offscreen: OffscreenAssignment | None = None,
    retrieval: bool = True,
    progress: bool = True,
    desc: str = "evaluate",
    noise_pool: int | None = None,
) -> InferenceResult:
    """Run a model on every sample with positive, silence, noise and offscreen audio.

    The front-end, image size and transform are those of `localizer.spec`. `retrieval=False` skips
    the N x N similarity matrix (calibration). `noise_pool=K` (not the reference protocol, a speed
    option): per repetition only K noise clips are drawn and sample i hears clip i mod K, so the
    audio encoder runs K instead of N times per repetition; None (default) draws one clip per sample
    as the reference does.
    """
    check_at_least(1, batch_size=batch_size, repetitions=repetitions, noise_pool=noise_pool)
    check_at_least(0, workers=workers)
    if len(manifest) == 0:
        raise EvaluationError(f"{manifest.path}: test set is empty (no samples)")
    cfg = localizer.spec.audio
    if offscreen is None:
        offscreen = assign_offscreen(manifest, repetitions, seed)
    if offscreen.index.shape != (repetitions, len(manifest)):
        raise EvaluationError(f"offscreen assignment has shape {offscreen.index.shape}, expected ({repetitions}, {len(manifest)})")
    seeds = offscreen.seeds
    device = torch.device(device)
    model = localizer.model.to(device).eval()
    frontend = localizer.frontend(device)
    n, where = len(manifest), str(manifest.path)

    # ---- pass 1: audio embeddings
    audio_ds = AVDataset(manifest, image_transform=None, audio=cfg, load_images=False)
    nb = -(-n // batch_size)
    bar = tqdm(total=nb * (1 + repetitions) + nb, desc=desc, unit="batch", disable=not progress)
    chunks = []
    for batch in _loader(audio_ds, batch_size, workers):
        specs = frontend(batch["wave"].to(device))
        chunks.append(_run(lambda: model.audio_embedding(specs), where).float())
        bar.update()
    audio_emb = torch.cat(chunks)
    sil = _run(lambda: model.audio_embedding(negative_spectrograms("silence", [0], frontend, device=device)), where)[0].float()
    n_noise = n if noise_pool is None else max(1, min(int(noise_pool), n))
    noise_emb = torch.empty((repetitions, n_noise, audio_emb.shape[1]), dtype=torch.float32, device=device)
    for r, rs in enumerate(seeds):
        for k in range(0, n_noise, batch_size):
            idx = list(range(k, min(n_noise, k + batch_size)))
            specs = negative_spectrograms("noise", idx, frontend, seed=seed, rep_seed=rs, device=device)
            noise_emb[r, k:k + len(idx)] = _run(lambda: model.audio_embedding(specs), where).float()
            bar.update()
    bar.total -= (nb - (-(-n_noise // batch_size))) * repetitions
    bar.refresh()

    # ---- pass 2: images; every map is the model's map of the image's features with an audio embedding
    off = torch.as_tensor(offscreen.index, device=device)
    pos, neg = [], {t: [] for t in NEGATIVE_TYPES}
    img_emb, sim = [], []
    for batch in _loader(_ImageSet(manifest, localizer.image_transform()), batch_size, workers):
        idx = batch["index"].to(device)
        feat = _run(lambda: model.image_features(batch["image"].to(device)), where).float()
        pos.append(_run(lambda: model.pair_map(feat, audio_emb[idx])[:, 0], where).cpu())
        neg["silence"].append(model.cross_map(feat, sil[None])[:, 0].expand(repetitions, -1, -1, -1).cpu())
        neg["noise"].append(_pair_maps(model, feat, noise_emb[:, idx % n_noise]).cpu())
        neg["offscreen"].append(_pair_maps(model, feat, audio_emb[off[:, idx]]).cpu())
        img_emb.append(model.image_vector(feat).cpu())
        if retrieval:
            sim.append(_max_similarity(model, feat, audio_emb).cpu())
        bar.update()
    bar.close()

    labels = np.array([s.category if s.category is not None else "" for s in manifest], dtype=str)
    return InferenceResult(
        ids=np.array([s.id for s in manifest], dtype=str),
        labels=labels,
        pos_maps=torch.cat(pos).numpy(),
        neg_maps={t: torch.cat(v, dim=1).contiguous().numpy() for t, v in neg.items()},
        image_emb=torch.cat(img_emb).numpy(),
        audio_emb=model.audio_vector(audio_emb).cpu().numpy(),
        similarity=torch.cat(sim).numpy() if retrieval else None,
        offscreen=offscreen,
        repetition_seeds=list(seeds),
        extra={"image_size": localizer.spec.image_size, "negatives_in_db": bool(cfg.negatives_in_db),
               "noise_pool": noise_pool},
    )


def load_media(image_path: str | Path, audio_path: str | Path, cfg: AudioConfig | None = None,
               at: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a user's image (or video frame) and audio: uint8 (3, H, W) frame, float32 (N,) waveform.

    A video as `image_path` gives its frame at `at` seconds (default: the middle); a video as
    `audio_path` gives its audio track from `tile_seconds / 2` before that frame; any other audio file
    gives the window `cfg.window` selects (`sslsan.audio.place_window`), like every test clip. The
    waveform is at `cfg.sample_rate`, mono; the front-end tiles/cuts it to `tile_seconds`.
    """
    cfg = cfg or AudioConfig()
    t = at
    if is_video(image_path):
        frame, t = video_frame(image_path, at)
    else:
        frame = load_image(image_path)
    wave = load_audio(audio_path, sample_rate=cfg.sample_rate, mono=True)
    warn_if_short(wave.shape[0], cfg.tile_samples, cfg.sample_rate, audio_path)
    if t is not None and is_video(audio_path):
        start = max(0, min(int((t - cfg.tile_seconds / 2) * cfg.sample_rate), wave.shape[0] - cfg.tile_samples))
        wave = wave[start:]  # the window around the frame (the front-end cuts it to tile_seconds)
    else:
        wave = place_window(wave, cfg)
    return frame, wave


@torch.inference_mode()
def negative_embeddings(localizer: LoadedModel, negatives: tuple[str, ...] = ("silence", "noise"), *,
                        device: str | torch.device = "cpu", seed: int = 0) -> dict[str, torch.Tensor]:
    """Audio embeddings (E,) of waveform negatives: silence, and noise drawn as the evaluation's first
    repetition for sample 0 under `seed`. They do not depend on the input, so a caller localizing many
    inputs computes them once."""
    frontend = localizer.frontend(device)
    model = localizer.model.to(device).eval()
    out = {}
    for kind in negatives:
        spec = negative_spectrograms(kind, [0], frontend, seed=seed, device=device)
        out[kind] = _run(lambda: model.audio_embedding(spec), f"{kind} audio")[0].float()
    return out


def media_frontends(localizer: LoadedModel, device: str | torch.device = "cpu") -> tuple[ImageEvalTransform, torch.nn.Module]:
    """The checkpoint's image transform and audio front-end (on `device`), for `media_inputs`; a caller
    localizing many inputs builds them once (a front-end precomputes its filterbank/window)."""
    return localizer.image_transform(), localizer.frontend(device)


@torch.inference_mode()
def media_inputs(localizer: LoadedModel, frame: torch.Tensor, wave: torch.Tensor, *, device: str | torch.device = "cpu",
                 frontends: tuple[ImageEvalTransform, torch.nn.Module] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's inputs for one frame and its waveform: image (1, 3, S, S) and spectrogram (1, 1, F, T)
    on `device`. `frontends`: from `media_frontends` (default: built here).

    frame: uint8 (3, H, W), transformed as the checkpoint's spec says; wave: float32 (N,) at the
    front-end's sample rate.
    """
    transform, frontend = frontends or media_frontends(localizer, device)
    return transform(frame).unsqueeze(0).to(device), frontend(wave.unsqueeze(0).to(device))


@torch.inference_mode()
def batch_maps(localizer: LoadedModel, images: torch.Tensor, specs: torch.Tensor, *,
               negatives: dict[str, torch.Tensor] | None = None, where: str = "input") -> dict[str, torch.Tensor]:
    """Native maps of B images at once, float32 on their device: each image with its own spectrogram
    ("positive", (B, h, w)) and every image with each negative embedding in `negatives` ((B, h, w)
    each). One call per encoder; the model must already be in eval mode on the inputs' device."""
    model = localizer.model
    feat = _run(lambda: model.image_features(images), where).float()
    emb = _run(lambda: model.audio_embedding(specs), where).float()
    out = {"positive": _run(lambda: model.pair_map(feat, emb), where)[:, 0]}
    if negatives:
        neg = torch.stack([e.to(feat.device) for e in negatives.values()])
        maps = _run(lambda: model.cross_map(feat, neg), where)  # (B, K, h, w)
        out.update({name: maps[:, k] for k, name in enumerate(negatives)})
    return out


@torch.inference_mode()
def pair_maps(localizer: LoadedModel, manifest: Manifest, *, device: str | torch.device = "cpu",
              batch_size: int = EvaluationConfig.batch_size, workers: int = EvaluationConfig.workers,
              progress: bool = True, desc: str = "pairs") -> np.ndarray:
    """Native maps (N, h, w) float32 of each sample's image with its own audio and nothing else (the
    non-sounding pairs of an extended test set), from the model's `pair_map` like `run_inference`'s positives."""
    localizer.to(device)
    frontend = localizer.frontend(device)
    where = str(manifest.path)
    maps = []
    ds = AVDataset(manifest, image_transform=localizer.image_transform(), audio=localizer.spec.audio)
    for batch in tqdm(_loader(ds, batch_size, workers), desc=desc, unit="batch", disable=not progress):
        specs = frontend(batch["wave"].to(device))
        maps.append(batch_maps(localizer, batch["image"].to(device), specs, where=where)["positive"].cpu())
    return torch.cat(maps).numpy()


@torch.inference_mode()
def model_maps(localizer: LoadedModel, img: torch.Tensor, spec: torch.Tensor, *,
               negatives: dict[str, torch.Tensor] | None = None, where: str = "input") -> dict[str, np.ndarray]:
    """Native maps (h, w) float32 of `media_inputs`' image with its spectrogram ("positive") and with each
    negative embedding in `negatives` (see `negative_embeddings`): `batch_maps` of one input. Only this
    half runs the model, which must already be in eval mode on the inputs' device."""
    maps = batch_maps(localizer, img, spec, negatives=negatives, where=where)
    return {name: m[0].cpu().numpy() for name, m in maps.items()}


@torch.inference_mode()
def media_maps(localizer: LoadedModel, frame: torch.Tensor, wave: torch.Tensor, *, device: str | torch.device = "cpu",
               negatives: dict[str, torch.Tensor] | None = None, where: str = "input",
               frontends: tuple[ImageEvalTransform, torch.nn.Module] | None = None) -> dict[str, np.ndarray]:
    """Native maps (h, w) float32 of one frame with its waveform ("positive") and with each negative
    embedding in `negatives` (see `negative_embeddings`): `media_inputs` then `model_maps`."""
    img, spec = media_inputs(localizer, frame, wave, device=device, frontends=frontends)
    return model_maps(localizer.to(device), img, spec, negatives=negatives, where=where)


def localize_files(localizer: LoadedModel, image_path: str | Path, audio_path: str | Path,
                   device: str | torch.device = "cpu", at: float | None = None) -> np.ndarray:
    """Native map (h, w) float32 of a user's image file and audio file, any common format.

    The image is transformed as the checkpoint's spec says; the audio is decoded, down-mixed,
    resampled to the front-end's rate and tiled/cut to its window, like every test clip. Videos: see
    `load_media`.
    """
    frame, wave = load_media(image_path, audio_path, localizer.spec.audio, at)
    return media_maps(localizer, frame, wave, device=device, where=f"{image_path} + {audio_path}")["positive"]
