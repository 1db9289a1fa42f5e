"""The model behind `sslsan serve`: loaded once, shared by every request.

Decoding, the model's inputs (image transform, spectrogram) and rendering run in each request's own
thread on its own arrays; only the model call is serialised by a lock, so concurrent requests never
share tensors or interleave on the device.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from sslsan.data.manifest import read_manifest
from sslsan.evaluation.figures import AUDIO_LABELS, display_image, render_overlays
from sslsan.evaluation.inference import (
    load_media,
    media_frontends,
    media_inputs,
    model_maps,
    negative_embeddings,
)
from sslsan.evaluation.video import VideoOptions, localize_video
from sslsan.methods.checkpoint import LoadedModel, load_model
from sslsan.metrics import upsample

NEGATIVES = ("silence", "noise")
MAX_EXAMPLES = 6


@dataclass
class Localization:
    """One input's result: the frame as the model sees it and its native maps with each audio."""

    name: str
    frame: np.ndarray  # uint8 (224, 224, 3): the image squashed as the model sees it, for display
    maps: dict[str, np.ndarray]  # "positive" | "silence" | "noise" -> native (h, w) float32 map
    threshold: float | None  # the checkpoint's universal threshold
    boxes: list[list[float]] = field(default_factory=list)  # ground truth, normalised xyxy (examples only)
    upsample: str = "bilinear"  # how the method's maps reach 224 x 224 (its inference spec)

    def to_json(self) -> dict:
        """JSON for the page: per audio the native min/max and the 224 x 224 upsampled map (the one
        the overlay is drawn from, as in scoring) as base64 little-endian float32."""
        names = list(self.maps)
        up = np.asarray(upsample(np.stack([self.maps[n] for n in names]), mode=self.upsample), dtype="<f4")
        thr = self.threshold
        return {
            "name": self.name,
            "threshold": thr,
            "size": int(up.shape[-1]),
            "image": "data:image/png;base64," + base64.b64encode(_png(self.frame)).decode(),
            "boxes": self.boxes,
            "maps": [{
                "name": n, "label": AUDIO_LABELS.get(n, n),
                "min": float(self.maps[n].min()), "max": float(self.maps[n].max()),
                "shape": list(self.maps[n].shape),
                "above_threshold": None if thr is None else bool(self.maps[n].max() > np.float32(thr)),
                "values": base64.b64encode(up[k].tobytes()).decode(),
            } for k, n in enumerate(names)],
        }

    def to_png(self, threshold: float | None = None) -> bytes:
        """The paper's Fig. 2 for this input (`sslsan localize`'s rendering), at `threshold`
        (default: the universal threshold)."""
        thr = self.threshold if threshold is None else threshold
        return render_overlays(self.frame, {AUDIO_LABELS.get(n, n): m for n, m in self.maps.items()}, thr, title=self.name,
                               upsample_mode=self.upsample)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Example:
    """A sample of a prepared test set, offered on the page as one click."""

    id: str
    image: Path
    audio: Path
    category: str | None
    boxes: list[list[float]]


def load_examples(manifest_path: str | Path, n: int = MAX_EXAMPLES) -> list[Example]:
    """Up to `n` samples of a manifest, one per category first (in file order), for the example buttons."""
    manifest = read_manifest(manifest_path)
    firsts = {}
    for s in manifest:
        firsts.setdefault(s.category, s.id)
    first_ids = set(firsts.values())
    chosen = sorted(manifest, key=lambda s: s.id not in first_ids)  # one per category first, then in order
    return [Example(id=s.id, image=manifest.resolve(s.image), audio=manifest.resolve(s.audio), category=s.category,
                    boxes=[list(map(float, b)) for b in s.boxes]) for s in chosen[:n]]


class LocalizationService:
    """A loaded checkpoint that localizes media files with positive, silence and noise audio."""

    def __init__(self, localizer: LoadedModel, *, device: str | torch.device = "cpu", name: str = "model",
                 threshold: float | None = None):
        self.device = torch.device(device)
        self.localizer = localizer.to(self.device)
        self.name = name
        self.threshold = threshold if threshold is not None else localizer.spec.universal_threshold
        self._lock = threading.Lock()
        self._negatives = negative_embeddings(self.localizer, NEGATIVES, device=self.device)  # the same for every input
        self._frontends = media_frontends(self.localizer, self.device)  # stateless, so shared; the filterbank once

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", threshold: float | None = None,
                        method: str | None = None, policy: str | None = None) -> LocalizationService:
        """`threshold` overrides the checkpoint's universal threshold (e.g. a published one); `method`, `policy`:
        those of an original checkpoint file (sslsan.methods.checkpoint.load_model)."""
        return cls(load_model(path, map_location=device, method=method, policy=policy), device=device, name=str(path),
                   threshold=threshold)

    def info(self) -> dict:
        spec = self.localizer.spec
        return {"checkpoint": self.name, "method": self.localizer.label, "threshold": self.threshold,
                "device": str(self.device), "image_size": spec.image_size,
                "audio_seconds": float(spec.audio.tile_seconds)}

    def localize(self, image: str | Path, audio: str | Path, *, name: str = "",
                 boxes: list[list[float]] | None = None) -> Localization:
        """Maps of an image (or video frame) with its audio, with silence and with noise.

        Raises the library's one-line ValueErrors (ImageError, AudioError, EvaluationError) for
        media it cannot use.
        """
        frame, wave = load_media(image, audio, self.localizer.spec.audio)
        img, spec = media_inputs(self.localizer, frame, wave, device=self.device, frontends=self._frontends)
        with self._lock:
            maps = model_maps(self.localizer, img, spec, negatives=self._negatives, where=name or str(image))
        return Localization(name=name or Path(image).name, frame=display_image(frame), maps=maps,
                            threshold=self.threshold, boxes=list(boxes or []), upsample=self.localizer.spec.map.upsample)

    def localize_video(self, video: str | Path, out: str | Path, options: VideoOptions | None = None, *,
                       on_progress: Callable[[int, int], None] | None = None) -> dict:
        """The overlay video of `video` into `out` (`sslsan.evaluation.video.localize_video`) at this service's
        threshold; the lock is held for each batch's model call only, so other requests go on meanwhile."""
        options = options or VideoOptions()
        if options.threshold is None:
            options = dataclasses.replace(options, threshold=self.threshold)
        return localize_video(self.localizer, video, out, options, device=self.device, progress=False,
                              on_progress=on_progress, lock=self._lock, frontends=self._frontends,
                              negatives=self._negatives)

    def localize_example(self, example: Example) -> Localization:
        return self.localize(example.image, example.audio, name=example.id, boxes=example.boxes)
