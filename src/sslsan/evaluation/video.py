"""Localize the sound of a whole video: every output frame's map, drawn as in Fig. 2, into a new video.

`localize_video(localizer, IN, OUT)` streams: frames are decoded, put on a constant output rate, batched
through the model (`inference.batch_maps`: one call per encoder per batch), drawn
(`figures.overlay_frames`) and encoded as they come; the sound is decoded as the windows need it, only
the samples of the coming windows are kept, and it is copied into the output (AAC). Memory does not
grow with the video's length. The rules (docs/evaluation.md, "Videos"):

* **Frames**: output frame k is at t = k / fps and shows the input frame on screen then (the last one
  starting at or before t; the first frame before that). There are ceil(end x fps) of them, `end`
  being where the video track's last frame ends. fps: the input's average rate, at most 30, or `fps`.
* **Size**: the upright input (rotation metadata applied), shrunk so its longer side is at most 1280,
  or `size`; both sides rounded down to even numbers (H.264 in yuv420p). The model sees this frame
  through the test image transform of its inference spec, as any image.
* **Sound of frame k**: a clip of the model's clip length (`clip_seconds`) centred on t,
  [t - clip/2, t + clip/2), heard as every test clip is: through the method's window rule and tiling
  (`sslsan.audio.place_window`: for SSL-TIE and SSL-SaN the whole 3 s tiled to `tile_seconds`). Near
  the ends of the track the clip holds what the track has there and is tiled like any short clip;
  where the track has no sound at all it is silence. A video without an audio track is an error (the
  maps need the sound).
* **Threshold**: the checkpoint's universal threshold U_th, or `threshold`; a frame's map is "above"
  when its maximum is strictly above float32(U_th), as everywhere else.
* **Output**: OUT (H.264 + AAC; MP4 plays in every browser) and the per-frame record
  ``OUT.frames.jsonl`` (`frames_file`), both written under temporary names beside OUT and renamed
  when complete: a failure leaves neither half-written.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from sslsan.audio import AudioConfig, place_window
from sslsan.evaluation.errors import EvaluationError, check_threshold
from sslsan.evaluation.figures import AUDIO_LABELS, label_frame, overlay_frames
from sslsan.evaluation.inference import batch_maps, media_frontends, negative_embeddings
from sslsan.media import AudioError, AudioReader, DecodedFrame, VideoWriter, probe_video, read_frames
from sslsan.methods.checkpoint import LoadedModel, load_model
from sslsan.metrics import pia, upsample
from sslsan.utils.device import resolve_device, to_device
from sslsan.utils.io import atomic_path

MAX_FPS = 30  # default output rate cap (a 60 fps phone video is rendered at 30)
MAX_SIDE = 1280  # default output size cap (longer side)
PANELS = ("silence", "noise")  # the side panels `panels` may ask for
IMAGE_PIXELS_PER_CALL = 8_000_000  # frame pixels per image-transform call (bounds memory)


@dataclass
class VideoOptions:
    """What `localize_video` makes: threshold, output rate and size, side panels, batch size, length limit."""

    threshold: float | None = None  # default: the checkpoint's universal threshold
    fps: float | None = None  # default: the input's average rate, at most MAX_FPS
    size: tuple[int, int] | int | None = None  # (width, height), or the longer side; default: the input's, capped
    panels: tuple[str, ...] = ()  # "silence", "noise": the same frame's map with that audio beside yours
    batch_size: int = 32  # frames per model call
    max_seconds: float | None = None  # refuse longer videos (sslsan serve)


def frames_file(out: str | Path) -> Path:
    """The per-frame record beside an output video: ``clip.mp4`` -> ``clip.frames.jsonl``."""
    out = Path(out)
    return out.with_name(out.stem + ".frames.jsonl")


def output_size(width: int, height: int, size: tuple[int, int] | int | None = None) -> tuple[int, int]:
    """(width, height) of the output frames for an upright input of width x height (module doc)."""
    if isinstance(size, tuple):
        w, h = size
    else:
        side = MAX_SIDE if size is None else size
        scale = min(1.0, side / max(width, height)) if size is None else side / max(width, height)
        w, h = round(width * scale), round(height * scale)
    return max(2, w - w % 2), max(2, h - h % 2)


def output_rate(source: Fraction | None, fps: float | None = None) -> Fraction:
    """Frames per second of the output (module doc); an explicit `fps` must lie in (0, 120]."""
    if fps is not None:
        if not 0 < fps <= 120:
            raise ValueError(f"fps must be above 0 and at most 120, got {fps:g}")
        return Fraction(fps).limit_denominator(1001)
    if not source or source <= 0:
        return Fraction(25)
    return min(Fraction(source), Fraction(MAX_FPS))


def frames_at_rate(frames: Iterable[DecodedFrame], fps: Fraction) -> Iterator[tuple[int, DecodedFrame]]:
    """(k, the frame on screen at k / fps) for every output frame k, from frames in presentation order
    (variable rate, gaps and repeated timestamps included; module doc)."""
    eps = 1e-3 / float(fps)  # timestamps are rationals; a frame at t shows at an output time within eps of t
    k, shown, period = 0, None, 1 / float(fps)
    for frame in frames:
        if shown is not None:
            while k / fps < frame.time - eps:
                yield k, shown
                k += 1
        shown = frame
    if shown is None:
        return
    end = shown.time + (shown.duration or period)
    while k / fps < end - eps:
        yield k, shown
        k += 1


def audio_windows(reader: AudioReader, times: list[float], cfg: AudioConfig) -> tuple[torch.Tensor, np.ndarray]:
    """What the model hears at each output time, (B, tile samples): its clip (module doc: cut at the
    track's ends; silence where the track has none) through the method's window rule and tiling
    (`sslsan.audio.place_window`), as every test clip; and how many samples of the track each clip holds."""
    n, sr = cfg.clip_samples, cfg.sample_rate
    reader.read_until(1)  # the time of the track's first sample
    first = reader.first or 0.0
    starts = [int(round((t - cfg.clip_seconds / 2 - first) * sr)) for t in times]
    reader.read_until(starts[-1] + n)
    clips = np.zeros((len(times), n), np.float32)
    held = np.zeros(len(times), np.int64)
    for b, i0 in enumerate(starts):
        part = reader.samples(i0, i0 + n)
        clips[b, : len(part)] = part
        held[b] = len(part)
    reader.drop_before(starts[0])
    whole = (held == n) | (held == 0)  # a whole clip, or a whole clip of silence: one call for all of them
    windows = torch.empty((len(times), cfg.tile_samples), dtype=torch.float32)
    if whole.any():
        windows[torch.from_numpy(whole)] = place_window(torch.from_numpy(clips[whole]), cfg)
    for b in np.flatnonzero(~whole):  # cut at an end of the track: a shorter clip
        windows[b] = place_window(torch.from_numpy(clips[b, : held[b]]), cfg)
    return windows, held


class _Run:
    """One overlay video being made: frames gathered into batches; per batch the sound windows, the maps
    in one model call, then every frame drawn, encoded and recorded."""

    def __init__(self, localizer: LoadedModel, threshold, negatives, frontends, device, lock,
                 batch_size: int, fps: Fraction, where: str):
        self.localizer, self.cfg, self.threshold = localizer, localizer.spec.audio, threshold
        self.upsample = localizer.spec.map.upsample  # how the method's maps reach an image's size
        self.negatives, self.device = negatives, torch.device(device)
        self.transform, self.frontend = frontends
        self.lock = lock or contextlib.nullcontext()
        self.batch_size, self.fps, self.where = batch_size, fps, where
        self.batch: list[tuple[int, DecodedFrame]] = []
        self.done = self.above = 0

    def add(self, k: int, frame: DecodedFrame, reader: AudioReader, writer: VideoWriter, log) -> bool:
        """Queue output frame k; True when that completed a batch (then made and written)."""
        self.batch.append((k, frame))
        if len(self.batch) < self.batch_size:
            return False
        self.flush(reader, writer, log)
        return True

    def flush(self, reader: AudioReader, writer: VideoWriter, log) -> None:
        if not self.batch:
            return
        times = [float(k / self.fps) for k, _ in self.batch]
        windows, held = audio_windows(reader, times, self.cfg)
        maps = self.maps(np.stack([f.image for _, f in self.batch]), windows)
        thr = self.threshold
        pias = (np.atleast_1d(pia(upsample(maps["positive"], mode=self.upsample), thr)).tolist() if thr is not None
                else [None] * len(times))
        for b, (k, frame) in enumerate(self.batch):
            writer.write(self.draw(frame.image, maps, b))
            row = _record(k, times[b], frame, maps, b, int(held[b]) / self.cfg.sample_rate, pias[b], thr)
            self.above += bool(row["above_threshold"])
            log.write(json.dumps(row) + "\n")
        self.done += len(self.batch)
        self.batch.clear()

    @torch.inference_mode()
    def maps(self, images: np.ndarray, windows: torch.Tensor) -> dict[str, np.ndarray]:
        """Native maps (B, h, w) of uint8 frames (B, H, W, 3) with their sound windows, and with each negative."""
        chunk = max(1, IMAGE_PIXELS_PER_CALL // (images.shape[1] * images.shape[2]))
        pixels = torch.cat([self.transform(to_device(torch.from_numpy(images[i:i + chunk]), self.device).permute(0, 3, 1, 2))
                            for i in range(0, len(images), chunk)])
        specs = self.frontend(to_device(windows, self.device))
        with self.lock:
            maps = batch_maps(self.localizer, pixels, specs, negatives=self.negatives, where=self.where)
        return {name: m.cpu().numpy() for name, m in maps.items()}

    def draw(self, image: np.ndarray, maps: dict[str, np.ndarray], b: int) -> np.ndarray:
        """The output frame: one overlaid copy of `image` per audio, side by side, each labelled."""
        thr = self.threshold
        panels = []
        for name, m in maps.items():
            panel = overlay_frames(image[None], m[b:b + 1], thr, self.upsample)[0]
            peak = float(m[b].max())
            above = thr is not None and peak > np.float32(thr)
            verdict = "" if thr is None else f", {'above' if above else 'below'} U_th"
            label = AUDIO_LABELS.get(name, name)
            label_frame(panel, (f"{label}: max {peak:.3f}{verdict}", f"{label}: {peak:.3f}", f"{peak:.3f}"),
                        highlight=above)
            panels.append(panel)
        return np.concatenate(panels, axis=1) if len(panels) > 1 else panels[0]


class _SoundCopy:
    """`AudioReader.on_frame` that copies the input's sound into the output, from the container start
    (silence before the track's first sample)."""

    def __init__(self, reader: AudioReader, writer: VideoWriter):
        self.reader, self.writer, self.started = reader, writer, False

    def __call__(self, frame) -> None:
        if not self.started:
            self.writer.write_silence(max(0.0, self.reader.first or 0.0))
            self.started = True
        self.writer.write_audio(frame)


def _record(k: int, t: float, frame: DecodedFrame, maps: dict[str, np.ndarray], b: int, held: float,
            pia_b: float | None, threshold: float | None) -> dict:
    pos = maps["positive"][b]
    y, x = np.unravel_index(int(np.argmax(pos)), pos.shape)
    row = {"kind": "frame", "frame": k, "time": round(t, 4), "source_time": round(frame.time, 4),
           "audio_seconds": round(held, 4), "map_max": float(pos.max()), "map_min": float(pos.min()),
           "above_threshold": None if threshold is None else bool(pos.max() > np.float32(threshold)),
           "pia": pia_b, "peak": [round((x + 0.5) / pos.shape[1], 4), round((y + 0.5) / pos.shape[0], 4)]}
    row.update({f"{name}_max": float(m[b].max()) for name, m in maps.items() if name != "positive"})
    return row


def localize_video(localizer: LoadedModel, video: str | Path, out: str | Path, options: VideoOptions | None = None, *,
                   device: str | torch.device = "cpu", progress: bool = True,
                   on_progress: Callable[[int, int], None] | None = None, lock=None,
                   frontends=None, negatives: dict[str, torch.Tensor] | None = None) -> dict:
    """Write the overlay video of `video` to `out` and its per-frame record beside it (module doc).

    `localizer`'s model is in eval mode on `device`; its inference spec gives the front-ends, the map's
    upsampling and the universal threshold. `lock` (a context manager) is held around each model call, so
    a server can share the model; `frontends` (`media_frontends`) and `negatives` (`negative_embeddings`)
    may be passed in to be computed once. `on_progress(done, expected)` is called after each batch.
    Returns the summary (also the record's last line). One-line ValueErrors (ImageError, AudioError,
    EvaluationError) for media it cannot use; nothing is written then.
    """
    options = options or VideoOptions()
    if options.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {options.batch_size}")
    unknown = [p for p in options.panels if p not in PANELS]
    if unknown:
        raise ValueError(f"unknown panel {unknown[0]!r}; choose from {', '.join(PANELS)}")
    out = Path(out)
    container = VideoWriter.CONTAINERS.get(out.suffix.lower())
    if container is None:
        raise EvaluationError(f"{out}: the overlay video is H.264 + AAC in {', '.join(VideoWriter.CONTAINERS)}; "
                              "give one of these suffixes")
    spec = localizer.spec
    threshold = check_threshold(options.threshold) if options.threshold is not None else spec.universal_threshold
    info = probe_video(video)
    if not info.audio:
        raise AudioError(f"{video}: no audio track; the maps need the sound (add one, or localize a frame with "
                         "--image and --audio)")
    end = info.video_end or info.duration
    if options.max_seconds is not None and end is not None and end > options.max_seconds:
        raise EvaluationError(f"{video}: video too long ({end:.1f} s); the limit here is {options.max_seconds:g} s")
    fps = output_rate(info.fps, options.fps)
    width, height = output_size(info.width, info.height, options.size)
    expected = math.ceil(end * fps - 1e-6) if end else 0
    names = ("positive", *options.panels)
    if negatives is None:
        negatives = negative_embeddings(localizer, tuple(options.panels), device=device) if options.panels else {}
    negatives = {p: negatives[p] for p in options.panels}
    run = _Run(localizer, threshold, negatives, frontends or media_frontends(localizer, device), device, lock,
               options.batch_size, fps, where=str(video))
    cfg = spec.audio
    header = {"kind": "video", "input": str(video), "output": str(out), "method": localizer.label, "fps": float(fps),
              "width": width, "height": height, "threshold": threshold, "clip_seconds": cfg.clip_seconds,
              "tile_seconds": cfg.tile_seconds, "image_size": spec.image_size, "maps": list(names),
              "source": {"width": info.width, "height": info.height, "rotation": 90 * info.quarter_turns,
                         "fps": float(info.fps) if info.fps else None, "duration": info.duration}}
    reader = AudioReader(video, cfg.sample_rate)
    bar = tqdm(total=expected or None, desc=Path(video).name, unit="frame", disable=not progress)
    try:
        with atomic_path(frames_file(out), ".jsonl") as rec_tmp, atomic_path(out, out.suffix) as vid_tmp, \
                open(rec_tmp, "w") as log, \
                VideoWriter(vid_tmp, width * len(names), height, fps, audio_rate=reader.rate,
                            audio_channels=min(2, reader.channels), container=container) as writer:
            sound = reader.on_frame = _SoundCopy(reader, writer)
            log.write(json.dumps(header) + "\n")
            for k, frame in frames_at_rate(read_frames(info, width, height), fps):
                if run.add(k, frame, reader, writer, log):
                    bar.update(options.batch_size)
                    if on_progress is not None:
                        on_progress(run.done, max(run.done, expected))
            left = len(run.batch)
            run.flush(reader, writer, log)
            bar.update(left)
            if on_progress is not None:
                on_progress(run.done, run.done)
            reader.finish()
            if not sound.started:
                raise AudioError(f"{video}: audio track holds no samples")
            summary = {"kind": "summary", "frames": run.done, "seconds": round(run.done / float(fps), 4),
                       "above_threshold_frames": run.above if threshold is not None else None,
                       "output": str(out), "frames_file": str(frames_file(out))}
            log.write(json.dumps(summary) + "\n")
            writer.close()
    except BaseException:
        bar.leave = False  # the error is the last line, not a stopped bar
        raise
    finally:
        bar.close()
        reader.close()
    return {**header, **summary}


def localize_video_file(checkpoint: str | Path, video: str | Path, out: str | Path, options: VideoOptions | None = None,
                        *, device: str = "auto", progress: bool = True, method: str | None = None,
                        policy: str | None = None) -> dict:
    """`sslsan localize --video IN --out OUT.mp4`: load `checkpoint` (`method`, `policy`: those of an original
    file), write the overlay video, print a summary."""
    dev = resolve_device(device)
    localizer = load_model(checkpoint, map_location=dev, method=method, policy=policy).to(dev)
    summary = localize_video(localizer, video, out, options, device=dev, progress=progress)
    thr = summary["threshold"]
    heard = ("" if thr is None else f"; the map is above U_th = {thr:.4f} in {summary['above_threshold_frames']} "
             f"of {summary['frames']} frames")
    if thr is None:
        print("note: the checkpoint has no universal threshold and none was given: overlays are not thresholded",
              file=sys.stderr)
    print(f"{summary['output']}: {summary['frames']} frames, {summary['seconds']:.2f} s at {summary['fps']:g} fps, "
          f"{summary['width']} x {summary['height']}{heard}; per frame: {summary['frames_file']}")
    return summary
