"""The one manifest format every dataset is prepared into (docs/datasets.md §7).

A manifest is a JSONL file, one sample per line. Paths are relative to the manifest's folder, so
a prepared dataset can be moved as a whole. Loaders read manifests only; they never list folders.

Fields of a line:
  id                str, unique within the manifest
  image             str, path of the frame (JPEG/PNG)
  audio             str, path of the audio clip (WAV/FLAC/...)
  boxes             list of [x1, y1, x2, y2] in normalised [0, 1] image coordinates (may be empty)
  mask              str | null, path of a binary PNG mask of the sounding object(s)
  category          str | null, class of the sound in `audio` (retrieval label, offscreen draws)
  scene_categories  list[str], every category visible in the image (offscreen must avoid them)
  group             str | null, scene id (IS3: one image with several annotations; S4: video)
  extra             dict, anything dataset-specific (kept, never interpreted by generic code)
  visible           bool, default true (written only when false): false marks a non-sounding pair, an
                    image with a sound whose source is not in it (SLAVC's extended test sets); such a
                    sample has no boxes and no mask
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sslsan.utils.io import atomic_write_text


class ManifestError(ValueError):
    """A manifest that is missing, empty or malformed; the message names the file (and line)."""


@dataclass
class Sample:
    id: str
    image: str
    audio: str
    boxes: list[list[float]] = field(default_factory=list)
    mask: str | None = None
    category: str | None = None
    scene_categories: list[str] = field(default_factory=list)
    group: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    visible: bool = True

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        if self.visible:
            del d["visible"]  # the default is not written: manifests of sounding pairs keep their bytes
        return json.dumps(d, sort_keys=False, separators=(",", ":"))


_FIELDS = {f.name for f in dataclasses.fields(Sample)}


@dataclass
class Manifest:
    """Samples plus the folder their relative paths are resolved against."""

    path: Path
    samples: list[Sample]

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, rel: str) -> Path:
        return (self.root / rel).resolve() if not Path(rel).is_absolute() else Path(rel)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def categories(self) -> list[str]:
        return sorted({s.category for s in self.samples if s.category is not None})

    def split_visible(self) -> tuple[Manifest, Manifest]:
        """(the sounding pairs, the non-sounding pairs), each in file order, both resolving paths as this one."""
        return (Manifest(self.path, [s for s in self.samples if s.visible]),
                Manifest(self.path, [s for s in self.samples if not s.visible]))


def _sample_from(obj: Any, where: str) -> Sample:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    missing = [k for k in ("id", "image", "audio") if k not in obj]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {missing}")
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {unknown}")
    boxes = obj.get("boxes") or []
    if not isinstance(boxes, list):
        raise ManifestError(f"{where}: sample {obj['id']!r}: boxes must be a list of [x1, y1, x2, y2], got {boxes!r}")
    for b in boxes:
        if not (isinstance(b, (list, tuple)) and len(b) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)):
            raise ManifestError(f"{where}: sample {obj['id']!r}: box {b!r} is not [x1, y1, x2, y2] (four numbers)")
        if not all(math.isfinite(v) for v in b):
            raise ManifestError(f"{where}: sample {obj['id']!r}: box {b!r} has a NaN or infinite coordinate")
    visible = obj.get("visible", True)
    if not isinstance(visible, bool):
        raise ManifestError(f"{where}: sample {obj['id']!r}: visible must be true or false, got {visible!r}")
    if not visible and (boxes or obj.get("mask")):
        raise ManifestError(f"{where}: sample {obj['id']!r}: a non-sounding pair (visible: false) has no boxes or mask")
    for key in ("image", "audio"):
        if not isinstance(obj[key], str) or not obj[key]:
            raise ManifestError(f"{where}: sample {obj['id']!r}: {key} must be a file path, got {obj[key]!r}")
    return Sample(**{**obj, "id": str(obj["id"]), "boxes": [[float(v) for v in b] for b in boxes]})


def read_manifest(path: str | Path, allow_empty: bool = False) -> Manifest:
    """Read and validate a JSONL manifest. Errors name the file and the line."""
    path = Path(path)
    if path.is_dir():
        raise ManifestError(f"{path}: is a folder; pass the manifest file (e.g. {path}/test.jsonl)")
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    samples: list[Sample] = []
    seen: set[str] = set()
    with open(path) as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{i}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not valid JSON ({exc.msg})") from None
            s = _sample_from(obj, where)
            if s.id in seen:
                raise ManifestError(f"{where}: duplicate id {s.id!r}")
            seen.add(s.id)
            samples.append(s)
    if not samples and not allow_empty:
        raise ManifestError(f"{path}: manifest is empty (no samples)")
    return Manifest(path=path, samples=samples)


def write_manifest(path: str | Path, samples: Iterable[Sample]) -> Path:
    """Write samples as JSONL, atomically."""
    text = "".join(s.to_json() + "\n" for s in samples)
    return atomic_write_text(path, text)


def manifest_hash(path: str | Path) -> str:
    """sha256 of the manifest bytes: recorded in run directories (DECISIONS D13)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
