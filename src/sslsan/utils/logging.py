"""JSONL metrics logging: one JSON object per line, appended and flushed immediately."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from sslsan.utils.io import make_folder


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf; keep them visible rather than dropping the key
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


class JsonlLogger:
    """Append records to `path`; each gets a wall-clock `time` field. Safe to reopen on resume."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            make_folder(self.path.parent)
            self._fh = open(self.path, "a", buffering=1)

    def log(self, record: dict[str, Any] | None = None, **fields: Any) -> None:
        if not self.enabled:
            return
        rec = {"time": round(time.time(), 3), **(record or {}), **fields}
        self._fh.write(json.dumps(_jsonable(rec), sort_keys=False) + "\n")

    def close(self) -> None:
        if self.enabled and not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "JsonlLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line raises ValueError naming the file and line number."""
    out = []
    with open(path) as fh:
        for i, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
    return out
