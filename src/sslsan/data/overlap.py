"""`sslsan data overlap TRAIN TEST`: clips a training manifest shares with a test manifest.

Two kinds of overlap (datasets_spec 6.1: the EZ-VSL 144K list holds 3,709 VGG-SS test clips):
* the same clip id;
* the same YouTube video (`<11-char id>_<start>` ignoring the timestamp): a different 10 s window of a
  test video is still the same scene, so a model may have seen it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from sslsan.data.manifest import Manifest, ManifestError, read_manifest
from sslsan.data.prepare.common import youtube_id
from sslsan.utils.io import atomic_write_text


@dataclass
class Overlap:
    train: str
    test: str
    n_train: int
    n_test: int
    same_id: list[str]  # test ids also in the training manifest
    same_video: list[str]  # test ids whose YouTube video appears in the training manifest (includes same_id)

    def to_dict(self) -> dict:
        return {"train": self.train, "test": self.test, "n_train": self.n_train, "n_test": self.n_test,
                "n_same_id": len(self.same_id), "n_same_video": len(self.same_video),
                "same_id": self.same_id, "same_video": self.same_video}


def read_ids_or_manifest(path: str | Path) -> Manifest:
    """A JSONL manifest, or a plain id list (.txt/.csv: first column, e.g. a public 144K list) as one."""
    from sslsan.data.manifest import Sample

    path = Path(path)
    if path.suffix.lower() in (".txt", ".csv") and path.is_file():
        ids = [line.split(",")[0].strip() for line in path.read_text().splitlines()]
        ids = [i.rsplit(".", 1)[0] if i.lower().endswith((".mp4", ".wav", ".jpg")) else i for i in ids]
        return Manifest(path, [Sample(id=i, image="", audio="") for i in dict.fromkeys(ids) if i and not i.startswith("#")])
    return read_manifest(path)


def _video_of(sample) -> str | None:
    return sample.extra.get("youtube_id") or youtube_id(sample.id)


def find_overlap(train: Manifest, test: Manifest) -> Overlap:
    train_ids = {s.id for s in train}
    train_videos = {v for v in map(_video_of, train) if v}
    same_id = sorted(s.id for s in test if s.id in train_ids)
    same_video = sorted(s.id for s in test if s.id in train_ids or (_video_of(s) in train_videos))
    return Overlap(str(train.path), str(test.path), len(train), len(test), same_id, same_video)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sslsan data overlap",
                                description="Report test clips that also occur in a training manifest: by clip id "
                                            "and by YouTube video id (timestamps ignored).")
    p.add_argument("train", help="training manifest (e.g. OUT/train.jsonl of `sslsan prepare vggsound`), or a plain "
                                 "id list (.txt/.csv, e.g. a public 144K list) to check before preparing")
    p.add_argument("test", help="test manifest (e.g. OUT/vggss.jsonl)")
    p.add_argument("--json", help="also save the full lists to this JSON file")
    p.add_argument("--show", type=int, default=10, help="how many overlapping ids to print (default 10)")
    p.add_argument("--fail-on-overlap", action="store_true", help="exit with status 1 when any clip is shared")
    args = p.parse_args(argv)
    try:
        result = find_overlap(read_ids_or_manifest(args.train), read_manifest(args.test))
    except ManifestError as exc:
        print(f"sslsan data overlap: error: {exc}", file=sys.stderr)
        return 2
    def pct(n: int) -> str:
        return f"{100.0 * n / max(result.n_test, 1):.1f}%"

    print(f"train {result.train}: {result.n_train} clips; test {result.test}: {result.n_test} clips")
    print(f"  same clip id:       {len(result.same_id):>7} test clips ({pct(len(result.same_id))})")
    print(f"  same YouTube video: {len(result.same_video):>7} test clips ({pct(len(result.same_video))})")
    for sid in result.same_video[:args.show]:
        print(f"    {sid}{'  (same id)' if sid in set(result.same_id) else ''}")
    if len(result.same_video) > args.show:
        print(f"    ... {len(result.same_video) - args.show} more" + ("" if args.json else " (--json FILE lists all)"))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(result.to_dict(), indent=1) + "\n")
        print(f"  saved {args.json}")
    return 1 if (args.fail_on_overlap and result.same_video) else 0


if __name__ == "__main__":
    sys.exit(main())
