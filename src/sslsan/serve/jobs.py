"""Overlay videos for `sslsan serve`: made in the background, one at a time, each in a private folder.

A job is the uploaded video, checked when it is submitted (a video track, an audio track, at most the
server's length limit), then `LocalizationService.localize_video` in the jobs' one worker thread. The
page polls its state (queued, running with frames done and the rate, done, error) and then fetches
`overlay.mp4` and `overlay.frames.jsonl`. Only the latest `keep` finished jobs keep their files;
`close()` (the server stopping) ends the running job at its next batch and removes every file.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sslsan.evaluation.errors import EvaluationError
from sslsan.evaluation.video import VideoOptions, frames_file
from sslsan.media import AudioError, probe_video
from sslsan.serve.service import LocalizationService

log = logging.getLogger("sslsan.serve")


class JobClosed(Exception):
    """The server is stopping: the running job ends."""


@dataclass
class VideoJob:
    id: str
    name: str  # the user's file name
    folder: Path
    options: VideoOptions
    state: str = "queued"  # queued | running | done | error
    done: int = 0  # frames
    total: int = 0  # frames expected
    error: str | None = None
    summary: dict = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None

    @property
    def video(self) -> Path:
        return self.folder / "overlay.mp4"

    def to_json(self) -> dict:
        elapsed = ((self.finished or time.monotonic()) - self.started) if self.started else 0.0
        out = {"id": self.id, "name": self.name, "state": self.state, "done": self.done, "total": self.total,
               "rate": round(self.done / elapsed, 2) if elapsed > 0 else None, "error": self.error}
        if self.state == "done":
            out.update(video=f"/api/video/{self.id}/overlay.mp4", frames=f"/api/video/{self.id}/overlay.frames.jsonl",
                       seconds=self.summary.get("seconds"), threshold=self.summary.get("threshold"),
                       above_threshold_frames=self.summary.get("above_threshold_frames"))
        return out


class VideoJobs:
    """The overlay-video jobs of one server (module doc)."""

    def __init__(self, service: LocalizationService, max_seconds: float, keep: int = 8):
        self.service, self.max_seconds, self.keep = service, max_seconds, keep
        self.root = Path(tempfile.mkdtemp(prefix="sslsan-serve-videos-"))
        self._jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sslsan-video")

    def submit(self, upload: Path, name: str, panels: tuple[str, ...] = ()) -> VideoJob:
        """Check the uploaded video (ValueErrors naming `name`) and queue its job; `upload` is moved into it."""
        info = probe_video(upload)
        if not info.audio:
            raise AudioError(f"{upload}: no audio track; the overlay video needs the sound")
        length = info.video_end or info.duration
        if length is not None and length > self.max_seconds:
            raise EvaluationError(f"{upload}: video too long ({length:.1f} s); this server makes overlay videos of up "
                                  f"to {self.max_seconds:g} s (sslsan serve --max-video-seconds), and "
                                  "`sslsan localize --video` has no limit")
        job_id = secrets.token_hex(8)
        folder = self.root / job_id
        folder.mkdir()
        source = folder / f"input{upload.suffix}"
        shutil.move(upload, source)
        job = VideoJob(id=job_id, name=name, folder=folder, options=VideoOptions(panels=panels))
        with self._lock:
            self._jobs[job_id] = job
            self._forget_old()
        self._worker.submit(self._run, job, source)
        return job

    def get(self, job_id: str) -> VideoJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def file(self, job_id: str, name: str) -> Path | None:
        """A finished job's output file (`overlay.mp4` or `overlay.frames.jsonl`), else None."""
        job = self.get(job_id)
        if job is None or job.state != "done":
            return None
        path = {"overlay.mp4": job.video, "overlay.frames.jsonl": frames_file(job.video)}.get(name)
        return path if path is not None and path.is_file() else None

    def _run(self, job: VideoJob, source: Path) -> None:
        if self._closed:
            return
        job.state, job.started = "running", time.monotonic()

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            if self._closed:
                raise JobClosed

        try:
            job.summary = self.service.localize_video(source, job.video, job.options, on_progress=progress)
            job.state = "done"
        except JobClosed:
            job.state, job.error = "error", "the server stopped"
        except ValueError as exc:  # the library's one-line input errors; name the user's file, not ours
            job.state, job.error = "error", str(exc).replace(str(source), job.name).splitlines()[0]
        except Exception as exc:  # a bug: the page gets one line, the server log the details
            log.exception("overlay video of %s failed", job.name)
            job.state, job.error = "error", f"internal error ({type(exc).__name__}); the server log has the details"
        finally:
            job.finished = time.monotonic()
            source.unlink(missing_ok=True)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in ("done", "error")]
        for job in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        self._closed = True
        self._worker.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)
