"""The web layer of `sslsan serve`: a Starlette app over `LocalizationService`.

Routes (JSON unless said otherwise; every error is `{"error": "one line"}` with a 4xx/5xx status):
  GET  /                          the page (static/index.html, no build step, no CDN)
  GET  /api/info                  checkpoint, universal threshold, device, upload limit, examples
  POST /api/localize              multipart: `image` + `audio`, or `video` -> maps with your audio, silence, noise
  POST /api/localize.png          the same upload -> Fig. 2 PNG (`?threshold=` moves the threshold)
  GET  /api/examples/{i}/image    an example's image file
  POST /api/examples/{i}[.png]    an example's result
  POST /api/video                 multipart: `video` (`?panels=silence,noise`) -> 202 {"id", "status"}: the overlay
                                  video of every frame, made in the background (serve.jobs); longer than the
                                  server's limit, without an audio track or undecodable: 422
  GET  /api/video/{id}            its state: queued, running (frames done, expected, frames/s), done (links), error
  GET  /api/video/{id}/{file}     overlay.mp4 (H.264 + AAC) or overlay.frames.jsonl of a finished job
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sslsan.evaluation.video import PANELS
from sslsan.media import VIDEO_EXTENSIONS
from sslsan.serve import MAX_UPLOAD_MB, MAX_VIDEO_SECONDS
from sslsan.serve.jobs import VideoJob, VideoJobs
from sslsan.serve.service import Example, Localization, LocalizationService

log = logging.getLogger("sslsan.serve")

STATIC = Path(__file__).parent / "static"
SLOTS = ("image", "audio", "video")


class RequestError(Exception):
    """A request the server cannot use; `status` is its HTTP status, the message one line for the page."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _error(message: str, status: int) -> JSONResponse:
    line = str(message).strip().splitlines()[0] if str(message).strip() else "error"
    return JSONResponse({"error": line[:500]}, status_code=status)


def _suffix(filename: str | None, slot: str) -> str:
    """The upload's extension (the decoders dispatch on it), sanitised; a video slot always gets one."""
    ext = Path(filename or "").suffix.lower()
    ext = ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ""
    return ext if slot != "video" or ext in VIDEO_EXTENSIONS else ".mp4"


def _check_length(request: Request, limit_mb: float) -> None:
    size = request.headers.get("content-length")
    if size is None or not size.isdigit():
        raise RequestError("the upload has no Content-Length; send it as a normal form upload", 411)
    if int(size) > limit_mb * 2**20:
        raise RequestError(f"upload too large: {int(size) / 2**20:.1f} MB; the limit is {limit_mb:g} MB per request", 413)


def _pick_inputs(files: dict[str, tuple[str, object]]) -> tuple[str, str]:
    if "video" in files and not ({"image", "audio"} & files.keys()):
        return "video", "video"
    if {"image", "audio"} <= files.keys() and "video" not in files:
        return "image", "audio"
    given = ", ".join(sorted(files)) or "nothing"
    raise RequestError(f"give an image and an audio file, or one video file (got: {given})", 400)


def _user_names(exc: ValueError, paths: dict[str, Path], names: dict[str, str]) -> RequestError:
    """A library input error about our copies of the uploads, naming the user's files instead."""
    msg = str(exc)
    for slot, name in names.items():
        msg = msg.replace(str(paths[slot]), name)
    return RequestError(msg, 422)


def _localize_upload(service: LocalizationService, files: dict[str, tuple[str, object]]) -> Localization:
    """Copy the uploads into a private folder (the decoders read files) and localize them."""
    image_slot, audio_slot = _pick_inputs(files)
    with tempfile.TemporaryDirectory(prefix="sslsan-serve-") as tmp:
        paths, names = {}, {}
        for slot, (filename, fh) in files.items():
            path = Path(tmp) / f"{slot}{_suffix(filename, slot)}"
            with open(path, "wb") as out:
                shutil.copyfileobj(fh, out)
            paths[slot], names[slot] = path, filename or slot
        title = names[image_slot] if image_slot == audio_slot else f"{names[image_slot]} + {names[audio_slot]}"
        try:
            return service.localize(paths[image_slot], paths[audio_slot], name=title)
        except ValueError as exc:  # the library's one-line input errors; name the user's files, not ours
            raise _user_names(exc, paths, names) from None


def _submit_video(jobs: VideoJobs, files: dict[str, tuple[str, object]], panels: tuple[str, ...]) -> VideoJob:
    """Copy the uploaded video into the jobs' folder and queue its overlay video."""
    if set(files) != {"video"}:
        raise RequestError(f"send one file named video (got: {', '.join(sorted(files)) or 'nothing'})", 400)
    filename, fh = files["video"]
    path = jobs.root / f"upload-{secrets.token_hex(8)}{_suffix(filename, 'video')}"
    with open(path, "wb") as out:
        shutil.copyfileobj(fh, out)
    try:
        return jobs.submit(path, filename or "video", panels)
    except ValueError as exc:
        raise _user_names(exc, {"video": path}, {"video": filename or "video"}) from None
    finally:
        path.unlink(missing_ok=True)  # moved into the job when accepted


def _threshold(request: Request) -> float | None:
    raw = request.query_params.get("threshold")
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise RequestError(f"threshold must be a number, got {raw!r}", 400) from None


def _respond(result: Localization, png: bool, threshold: float | None) -> Response:
    if png:
        return Response(result.to_png(threshold), media_type="image/png")
    return JSONResponse(result.to_json())


def _panels(request: Request) -> tuple[str, ...]:
    panels = tuple(p for p in request.query_params.get("panels", "").split(",") if p)
    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        raise RequestError(f"unknown panel {unknown[0]!r}; choose from {', '.join(PANELS)}", 400)
    return panels


@contextlib.asynccontextmanager
async def _uploads(request: Request, max_upload_mb: float) -> AsyncIterator[dict[str, tuple[str, object]]]:
    """The uploaded files of a form, by slot (image, audio, video), open while the block runs."""
    _check_length(request, max_upload_mb)
    async with request.form(max_files=len(SLOTS), max_fields=len(SLOTS)) as form:
        files = {}
        for key, value in form.multi_items():
            if key not in SLOTS or isinstance(value, str):
                raise RequestError(f"unexpected form field {key!r}; send files named image, audio or video", 400)
            if value.filename or value.size:  # an empty file input sends an unnamed empty part
                files[key] = (value.filename, value.file)
        yield files


def create_app(service: LocalizationService, examples: list[Example] | None = None,
               max_upload_mb: float = MAX_UPLOAD_MB, max_video_seconds: float = MAX_VIDEO_SECONDS) -> Starlette:
    """The ASGI app serving `service` (and `examples`, when given) to the page; overlay videos of up to
    `max_video_seconds` are made in the background while it runs."""
    examples = list(examples or [])
    jobs = VideoJobs(service, max_video_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await run_in_threadpool(jobs.close)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def info(request: Request) -> Response:
        return JSONResponse({
            **service.info(), "max_upload_mb": max_upload_mb, "max_video_seconds": max_video_seconds,
            "examples": [{"index": i, "id": e.id, "category": e.category, "image": f"/api/examples/{i}/image"}
                         for i, e in enumerate(examples)],
        })

    async def localize(request: Request) -> Response:
        png = request.url.path.endswith(".png")
        try:
            threshold = _threshold(request)
            async with _uploads(request, max_upload_mb) as files:
                result = await run_in_threadpool(_localize_upload, service, files)
            return await run_in_threadpool(_respond, result, png, threshold)
        except RequestError as exc:
            return _error(str(exc), exc.status)

    async def video_submit(request: Request) -> Response:
        try:
            panels = _panels(request)
            async with _uploads(request, max_upload_mb) as files:
                job = await run_in_threadpool(_submit_video, jobs, files, panels)
            return JSONResponse({"id": job.id, "status": f"/api/video/{job.id}"}, status_code=202)
        except RequestError as exc:
            return _error(str(exc), exc.status)

    def _job(request: Request) -> VideoJob:
        job = jobs.get(request.path_params["job"])
        if job is None:
            raise HTTPException(404, f"no video job {request.path_params['job']} (finished jobs are kept for a while)")
        return job

    async def video_status(request: Request) -> Response:
        return JSONResponse(_job(request).to_json())

    async def video_file(request: Request) -> Response:
        job, name = _job(request), request.path_params["file"]
        path = jobs.file(job.id, name)
        if path is None:
            raise HTTPException(404, f"no {name} for video job {job.id} ({job.state})")
        media = "video/mp4" if name.endswith(".mp4") else "application/x-ndjson"
        return FileResponse(path, media_type=media, filename=f"{Path(job.name).stem}_{name}")

    def _example(request: Request) -> Example:
        i = request.path_params["index"]
        if not 0 <= i < len(examples):
            raise HTTPException(404, f"no example {i} (there are {len(examples)})")
        return examples[i]

    async def example_image(request: Request) -> Response:
        return FileResponse(_example(request).image)

    async def example_result(request: Request) -> Response:
        example = _example(request)
        try:
            threshold = _threshold(request)
            result = await run_in_threadpool(service.localize_example, example)
        except RequestError as exc:
            return _error(str(exc), exc.status)
        except ValueError as exc:  # the example's files changed or broke on disk
            return _error(str(exc), 422)
        return await run_in_threadpool(_respond, result, request.url.path.endswith(".png"), threshold)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.detail, exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(f"internal error ({type(exc).__name__}); the server log has the details", 500)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/localize", localize, methods=["POST"]),
        Route("/api/localize.png", localize, methods=["POST"]),
        Route("/api/examples/{index:int}/image", example_image),
        Route("/api/examples/{index:int}", example_result, methods=["POST"]),
        Route("/api/examples/{index:int}.png", example_result, methods=["POST"]),
        Route("/api/video", video_submit, methods=["POST"]),
        Route("/api/video/{job}", video_status),
        Route("/api/video/{job}/{file}", video_file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error},
                    lifespan=lifespan)
    app.state.jobs = jobs
    return app


def listen(host: str, port: int) -> socket.socket:
    """Bind here rather than in uvicorn, so a busy port is a one-line error and port 0 gets a real number."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
