"""VGGSound training data: videos -> one frame + a 3 s 16 kHz mono clip per video, plus manifests.

Output folder (`--out`):
  frames/<id>.jpg      the frame just before the clip middle (rule: sslsan.data.prepare.common),
                       squashed to frame_size x frame_size like SSL-TIE's 299x299 extraction (0: native size)
  audio/<id>.wav       the 3 s window centred on the middle, 16 kHz mono PCM16 (shorter when the
                       track is shorter than 3 s; the loader tiles it, docs/model.md §1)
  train.jsonl, val.jsonl  manifests; the validation split (DECISIONS D9) holds whole YouTube videos,
                       drawn by a seeded hash so an id's split never depends on which other ids exist
  skipped.jsonl        every item that could not be prepared: id, path, reason, detail
  summary.json         counts and timing; prepare_config.json: the settings (checked on resume)
  progress.jsonl       one line per finished item, appended as they finish: what a re-run resumes from
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from sslsan.data.manifest import Sample, write_manifest
from sslsan.data.prepare.clips import decode_clip
from sslsan.data.prepare.common import (
    MediaError, PrepareError, SkipReport, complete_jpeg, complete_wav,
    find_videos, format_summary, timer, write_summary, youtube_id,
)
from sslsan.media import SAMPLE_RATE, VIDEO_EXTENSIONS, jpeg_bytes, wav_bytes
from sslsan.utils.io import atomic_write_bytes, atomic_write_text, make_folder

# RMS below -60 dBFS: VGGSound holds muted clips (user_pain section 2); they become silence-like
# "positives", which matters for a silence-negative loss, so they are counted (and kept)
NEAR_SILENT_RMS = 1e-3


@dataclass
class VGGSoundConfig:
    videos: str
    out: str
    list_file: str | None = None
    subset: int | None = None
    seed: int = 0
    csv: str | None = None
    workers: int = 1
    val_fraction: float = 0.02
    frame_size: int = 299
    clip_seconds: float = 3.0
    jpeg_quality: int = 95

    def output_settings(self) -> dict[str, Any]:
        """Settings that change what is written per item: a resume must use the same ones."""
        return {"frame_size": self.frame_size, "clip_seconds": self.clip_seconds,
                "jpeg_quality": self.jpeg_quality, "sample_rate": SAMPLE_RATE}


# --------------------------------------------------------------------------------------------
# Inputs


def read_id_list(path: Path) -> list[str]:
    """Clip ids, one per line (a trailing extension and further CSV columns are ignored; '#' = comment)."""
    if not path.is_file():
        raise PrepareError(f"{path}: id list not found")
    ids: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split(",")[0].strip()
        if not line or line.startswith("#"):
            continue
        stem, ext = os.path.splitext(line)
        ids.append(stem if ext.lower() in VIDEO_EXTENSIONS + (".wav", ".jpg") else line)
    if not ids:
        raise PrepareError(f"{path}: id list is empty")
    return list(dict.fromkeys(ids))


def read_vggsound_csv(path: Path) -> dict[str, tuple[str, str]]:
    """id -> (label, split) from vggsound.csv (rows: YouTube id, start seconds, label, train/test)."""
    if not path.is_file():
        raise PrepareError(f"{path}: VGGSound CSV not found")
    out: dict[str, tuple[str, str]] = {}
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.reader(fh), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise PrepareError(f"{path}:{i}: expected 'YouTube id, start seconds, label, split', got {row!r}")
            try:
                start = int(float(row[1]))
            except ValueError:
                if i == 1:
                    continue  # a header line
                raise PrepareError(f"{path}:{i}: start seconds {row[1]!r} is not a number") from None
            out[f"{row[0].strip()}_{start:06d}"] = (row[2].strip(), row[3].strip() if len(row) > 3 else "")
    return out


def split_key(clip_id: str, seed: int) -> float:
    """Uniform [0, 1) number of the clip's YouTube video (the clip id when it has none), seeded."""
    key = youtube_id(clip_id) or clip_id
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2.0**64


def val_assignment(clip_id: str, seed: int, fraction: float) -> bool:
    """True if the clip belongs to the validation split: its video's seeded key is below `fraction`."""
    return split_key(clip_id, seed) < fraction


# --------------------------------------------------------------------------------------------
# One item (runs in worker processes)


def _paths(out: Path, clip_id: str) -> tuple[Path, Path]:
    return out / "frames" / f"{clip_id}.jpg", out / "audio" / f"{clip_id}.wav"


def prepare_one(task: tuple[str, str, str, dict[str, Any]]) -> dict[str, Any]:
    """Decode one video and write its frame and audio atomically. Returns a progress record."""
    clip_id, video, out_dir, settings = task
    out = Path(out_dir)
    try:
        clip = decode_clip(video, settings["clip_seconds"], settings["sample_rate"])
    except MediaError as err:
        return {"id": clip_id, "skip": {"path": err.path, "reason": err.reason, "detail": err.detail}}
    image = clip.frame
    size = settings["frame_size"]
    if size:
        image = image.resize((size, size), Image.BICUBIC)
    frame_path, audio_path = _paths(out, clip_id)
    atomic_write_bytes(frame_path, jpeg_bytes(image, settings["jpeg_quality"]))
    atomic_write_bytes(audio_path, wav_bytes(clip.wave, settings["sample_rate"]))
    return {"id": clip_id, "image": f"frames/{clip_id}.jpg", "audio": f"audio/{clip_id}.wav",
            "extra": {"source": str(video), "frame_time": round(clip.frame_time, 4),
                      "audio_start": round(clip.audio_start, 4),
                      "audio_seconds": round(len(clip.wave) / settings["sample_rate"], 4),
                      "audio_rms": round(float(np.sqrt(np.mean(np.square(clip.wave, dtype=np.float64)))), 6),
                      "audio_shifted": clip.shifted, "audio_short": clip.short}}


def _done_records(out: Path) -> dict[str, dict[str, Any]]:
    """Progress records of earlier runs whose outputs are still complete on disk."""
    path = out / "progress.jsonl"
    if not path.exists():
        return {}
    done: dict[str, dict[str, Any]] = {}
    with open(path) as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash: that item is simply done again
            if "skip" in rec or "id" not in rec:
                continue
            frame_path, audio_path = _paths(out, rec["id"])
            if complete_jpeg(frame_path) and complete_wav(audio_path):
                done[rec["id"]] = rec
    return done


def _end_torn_line(path: Path) -> None:
    """Terminate a last line torn by a crash, so the next record starts on a line of its own."""
    if path.exists() and path.stat().st_size:
        with open(path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    path = out / "prepare_config.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise PrepareError(f"{path}: damaged (not valid JSON: {exc.msg}); delete it to prepare {out} again") from None
        old = old.get("output_settings") if isinstance(old, dict) else None
        if old is not None and old != settings:
            raise PrepareError(f"{path}: {out} was prepared with {old}, this run asks for {settings}; "
                               f"use another --out folder (or delete {out})")


# --------------------------------------------------------------------------------------------
# The command


@dataclass
class PrepareResult:
    prepared: int
    reused: int
    report: SkipReport
    seconds: float
    train: Path
    val: Path


def select_items(cfg: VGGSoundConfig) -> list[tuple[str, Path | None]]:
    """(id, video path or None when the list names a video that is not there), sorted by id."""
    videos = find_videos(Path(cfg.videos))
    if cfg.list_file:
        ids = read_id_list(Path(cfg.list_file))
    else:
        ids = sorted(videos)
        if not ids:
            raise PrepareError(f"{cfg.videos}: no video files ({', '.join(VIDEO_EXTENSIONS)}) found")
    if cfg.subset is not None:
        if cfg.subset <= 0:
            raise PrepareError(f"--subset must be positive, got {cfg.subset}")
        if cfg.subset < len(ids):
            rng = np.random.default_rng(cfg.seed)
            keep = np.sort(rng.choice(len(ids), size=cfg.subset, replace=False))
            ordered = sorted(ids)
            ids = [ordered[i] for i in keep]
        else:
            print(f"sslsan prepare vggsound: --subset {cfg.subset} >= {len(ids)} candidate clips; using all",
                  file=sys.stderr)
    return [(i, videos.get(i)) for i in sorted(ids)]


def prepare_vggsound(cfg: VGGSoundConfig, progress: bool = True) -> PrepareResult:
    """Prepare VGGSound videos into frames, 3 s clips and train/val manifests (resumable)."""
    t0 = timer()
    out = Path(cfg.out)
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise PrepareError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.workers < 1:
        raise PrepareError(f"--workers must be >= 1, got {cfg.workers}")
    labels = read_vggsound_csv(Path(cfg.csv)) if cfg.csv else {}
    report = SkipReport()
    items = select_items(cfg)
    settings = cfg.output_settings()
    make_folder(out)
    _check_settings(out, settings)
    atomic_write_text(out / "prepare_config.json",
                      json.dumps({"dataset": "vggsound", "config": asdict(cfg), "output_settings": settings},
                                 indent=2) + "\n")
    done = _done_records(out)
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for clip_id, video in items:
        if clip_id in done:
            records[clip_id] = done[clip_id]
        elif video is None:
            report.add(clip_id, Path(cfg.videos) / f"{clip_id}.mp4", "missing", "listed but no video file with this id")
        else:
            todo.append((clip_id, str(video), str(out), settings))
    reused = len(records)

    def consume(rec: dict[str, Any], log, bar) -> None:
        log.write(json.dumps(rec, separators=(",", ":")) + "\n")
        log.flush()
        if "skip" in rec:
            report.add(rec["id"], rec["skip"]["path"], rec["skip"]["reason"], rec["skip"]["detail"])
            bar.set_postfix(skipped=len(report), refresh=False)
        else:
            records[rec["id"]] = rec

    _end_torn_line(out / "progress.jsonl")
    with open(out / "progress.jsonl", "a") as log, \
            tqdm(total=len(todo), unit="video", desc="prepare vggsound", disable=not progress,
                 dynamic_ncols=True) as bar:
        if cfg.workers == 1 or len(todo) <= 1:
            for task in todo:
                consume(prepare_one(task), log, bar)
                bar.update()
        else:
            # spawn: workers start clean (no inherited threads or open decoders)
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(cfg.workers) as pool:
                for rec in pool.imap_unordered(prepare_one, todo, chunksize=max(1, min(16, len(todo) // (8 * cfg.workers)))):
                    consume(rec, log, bar)
                    bar.update()

    train, val = [], []
    for clip_id in sorted(records):
        rec = records[clip_id]
        label, split = labels.get(clip_id, (None, ""))
        extra = dict(rec["extra"])
        yt = youtube_id(clip_id)
        if yt:
            extra["youtube_id"] = yt
        if split:
            extra["vggsound_split"] = split
        if extra.get("audio_short"):
            report.note("audio_short")
        if extra.get("audio_shifted"):
            report.note("audio_shifted")
        if extra.get("audio_rms", 1.0) < NEAR_SILENT_RMS:
            report.note("audio_near_silent")
        if split == "test":
            report.note("vggsound_test_split")
        if cfg.csv and label is None:
            report.note("no_csv_label")
        sample = Sample(id=clip_id, image=rec["image"], audio=rec["audio"], category=label,
                        scene_categories=[label] if label else [], group=yt, extra=extra)
        (val if val_assignment(clip_id, cfg.seed, cfg.val_fraction) else train).append(sample)
    if cfg.val_fraction > 0 and not val and len({s.group or s.id for s in train}) >= 2:
        # a small set drew no validation video: hold out the video with the smallest key, so model
        # selection always has data (D9); larger sets never get here
        first = min(train, key=lambda s: split_key(s.id, cfg.seed))
        val = [s for s in train if (s.group or s.id) == (first.group or first.id)]
        train = [s for s in train if (s.group or s.id) != (first.group or first.id)]
    train_path = write_manifest(out / "train.jsonl", train)
    val_path = write_manifest(out / "val.jsonl", val)
    report.write(out / "skipped.jsonl")
    seconds = timer() - t0
    write_summary(out, "vggsound", len(records), report, seconds, reused=reused, train=len(train), val=len(val),
                  processed_now=len(todo), videos_per_second=round(len(todo) / seconds, 3) if seconds > 0 else None)
    return PrepareResult(len(records), reused, report, seconds, train_path, val_path)


def summary_text(result: PrepareResult, out: Path) -> str:
    text = format_summary("vggsound", result.prepared, result.report, result.seconds, out, result.reused)
    return text + f"\n  manifests: {result.train} , {result.val}"
