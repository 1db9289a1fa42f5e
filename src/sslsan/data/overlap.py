"""Clips a training manifest shares with a test manifest (the library of `sslsan data overlap`).

Two kinds of overlap (docs/datasets.md §6: the EZ-VSL 144K list holds 3,709 VGG-SS test clips):
* the same clip id;
* the same YouTube video (`<11-char id>_<start>` ignoring the timestamp): a different 10 s window of a
  test video is still the same scene, so a model may have seen it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sslsan.data.manifest import Manifest, Sample, read_manifest
from sslsan.data.prepare.common import youtube_id


@dataclass
class Overlap:
    train: str
    test: str
    n_train: int
    n_test: int
    same_id: list[str]  # test ids also in the training manifest
    same_video: list[str]  # test ids whose YouTube video appears in the training manifest (includes same_id)

    def pct(self, n: int) -> str:
        """n test clips as a percentage of the test manifest."""
        return f"{100.0 * n / max(self.n_test, 1):.1f}%"

    def to_dict(self) -> dict:
        return {"train": self.train, "test": self.test, "n_train": self.n_train, "n_test": self.n_test,
                "n_same_id": len(self.same_id), "n_same_video": len(self.same_video),
                "same_id": self.same_id, "same_video": self.same_video}


def read_ids_or_manifest(path: str | Path) -> Manifest:
    """A JSONL manifest, or a plain id list (.txt/.csv: first column, e.g. a public 144K list) as one."""
    path = Path(path)
    if path.suffix.lower() in (".txt", ".csv") and path.is_file():
        ids = [line.split(",")[0].strip() for line in path.read_text().splitlines()]
        ids = [i.rsplit(".", 1)[0] if i.lower().endswith((".mp4", ".wav", ".jpg")) else i for i in ids]
        return Manifest(path, [Sample(id=i, image="", audio="") for i in dict.fromkeys(ids) if i and not i.startswith("#")])
    return read_manifest(path)


def _video_of(sample) -> str | None:
    return sample.extra.get("youtube_id") or youtube_id(sample.id)


def overlap_files(train: str | Path, test: str | Path) -> Overlap:
    """The overlap of a training manifest (or plain id list) and a test manifest, read from their files."""
    return find_overlap(read_ids_or_manifest(train), read_manifest(test))


def find_overlap(train: Manifest, test: Manifest) -> Overlap:
    train_ids = {s.id for s in train}
    train_videos = {v for v in map(_video_of, train) if v}
    same_id = sorted(s.id for s in test if s.id in train_ids)
    same_video = sorted(s.id for s in test if s.id in train_ids or (_video_of(s) in train_videos))
    return Overlap(str(train.path), str(test.path), len(train), len(test), same_id, same_video)
