"""A minimal standard-library client for a running `sslsan serve` (scripts, the load benchmark, tests)."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from pathlib import Path


def encode_multipart(files: dict[str, str | Path]) -> tuple[bytes, str]:
    """multipart/form-data body and its content type for form fields `name -> file path`."""
    boundary = f"sslsan-{secrets.token_hex(12)}"
    parts = []
    for name, path in files.items():
        path = Path(path)
        filename = path.name.replace('"', "%22").replace("\r", "").replace("\n", "")
        parts += [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                  "Content-Type: application/octet-stream\r\n\r\n".encode(), path.read_bytes(), b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_files(url: str, files: dict[str, str | Path], timeout: float = 120.0) -> tuple[int, bytes]:
    """POST `files` (e.g. {"image": "cat.jpg", "audio": "cat.wav"}) to `url`: (HTTP status, body)."""
    body, ctype = encode_multipart(files)
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:  # 4xx/5xx still carry the JSON error
        return exc.code, exc.read()
