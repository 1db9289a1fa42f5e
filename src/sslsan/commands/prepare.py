"""`sslsan prepare NAME ...`: turn a user's copy of a public dataset into sslsan manifests."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from sslsan.commands import CommandParser, positive_int

ON_INTERRUPT = "finished items are kept, run the same command again to resume"

DESCRIPTION = """\
Prepare a public dataset you downloaded into the manifest format sslsan reads (we ship no data and
no lists: DECISIONS D8). Nothing is fatal per item: missing, empty, truncated or undecodable files,
videos without audio track or video stream are skipped, counted, and listed in OUT/skipped.jsonl
with the reason. A summary (OUT/summary.json) ends every run.

  vggsound  training videos -> frames/, 3 s 16 kHz mono audio/, train.jsonl + val.jsonl (resumable)
  vggss     VGG-SS test set (frames/, audio/, vggss.json)            -> vggss.jsonl
            (--extended vggss_test_plus_silent.csv: also SLAVC's extended VGG-SS -> vggss_ext.jsonl)
  flickr    Flickr-SoundNet test set (frames/, audio/, Annotations/)  -> flickr.jsonl
            (--extended flickr_test_plus_silent.csv: also extended Flickr -> flickr_ext.jsonl)
  is3       IS3 test set (images/, audio_wav/, gt_segmentation/, synthetic3240_bbox.json) -> is3.jsonl
  is3plus   IS3+ (IS3 images + clean audio_wav/ + category_map.json) -> is3plus.jsonl
  s4        AVSBench S4 test split (s4_meta_data.csv, s4_data/)       -> s4.jsonl

Then: sslsan evaluate --dataset NAME --data-root OUT, sslsan train with data.train_manifest=OUT/train.jsonl.
"""


def _doc(module: str) -> str:
    """The module docstring of a prepare module: the layout it reads and the rules it applies. Read from
    its source, not imported, so `--help` does not load torch."""
    path = Path(__file__).resolve().parents[1] / "data" / "prepare" / f"{module}.py"
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    p = CommandParser(prog="sslsan prepare", description=DESCRIPTION, formatter_class=raw)
    sub = p.add_subparsers(dest="dataset", metavar="NAME", required=True)

    v = sub.add_parser("vggsound", help="VGGSound training videos -> frames, 3 s clips, train/val manifests",
                       description=_doc("vggsound") + "\n" + _doc("common").split("Every failure")[0].split("\n\n", 1)[1],
                       formatter_class=raw)
    v.add_argument("--videos", required=True, help="folder of video files (searched recursively; file stem = clip id)")
    v.add_argument("--list", dest="list_file", help="text file of clip ids to prepare, one per line (e.g. a 144K "
                                                    "list); ids without a video are reported as missing")
    v.add_argument("--subset", type=positive_int, help="prepare a seeded random subset of this many clips (of --list, "
                                              "or of all videos found)")
    v.add_argument("--seed", type=int, default=0, help="seed of --subset and of the validation split (default 0)")
    v.add_argument("--csv", help="vggsound.csv (YouTube id, start seconds, label, split): fills `category` and "
                                 "counts clips of the VGGSound test split")
    v.add_argument("--out", required=True, help="output folder (frames/, audio/, train.jsonl, val.jsonl, ...)")
    v.add_argument("--workers", type=positive_int, default=1, help="parallel decoding processes (default 1)")
    v.add_argument("--val-fraction", type=float, default=0.02,
                   help="fraction of YouTube videos held out for validation / model selection (DECISIONS D9; "
                        "default 0.02)")
    v.add_argument("--frame-size", type=int, default=299,
                   help="squash the frame to this square size, like SSL-TIE's 299x299 extraction; 0 keeps the "
                        "native size (default 299)")
    v.add_argument("--clip-seconds", type=float, default=3.0, help="audio window length in seconds (default 3)")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser("vggss", help="VGG-SS test set -> vggss.jsonl", description=_doc("vggss"), formatter_class=raw)
    s.add_argument("--root", help="folder with frames/<id>.jpg, audio/<id>.wav and vggss.json")
    s.add_argument("--videos", help="VGGSound test videos (<id>.mp4, searched recursively): clips without a frame/audio "
                                    "under --root are extracted from them (middle frame + whole track, 16 kHz mono)")
    s.add_argument("--out", required=True, help="output folder (manifest paths are relative to it)")
    s.add_argument("--annotations", help="the vggss.json annotation file (default: looked up under --root)")
    s.add_argument("--ids", help="restrict to the ids of this file (e.g. vggss_heard_test.csv)")
    s.add_argument("--drop-empty-gt", action="store_true",
                   help="leave out clips whose boxes cover no pixel after clipping (kept and flagged by default)")
    s.add_argument("--extended", metavar="CSV",
                   help="SLAVC's metadata/vggss_test_plus_silent.csv: also write vggss_ext.jsonl (extended VGG-SS: "
                   "the clips plus each listed non-sounding pair; `sslsan evaluate --dataset vggss-ext`)")

    f = sub.add_parser("flickr", help="Flickr-SoundNet test set -> flickr.jsonl", description=_doc("flickr"),
                       formatter_class=raw)
    f.add_argument("--root", required=True, help="folder with frames/<id>.jpg, audio/<id>.wav and Annotations/<id>.xml")
    f.add_argument("--out", required=True, help="output folder (manifest paths are relative to it)")
    f.add_argument("--list", dest="test_list", metavar="CSV",
                   help="the test ids, first column (default: flickr_test.csv under --root or its metadata/; "
                   "else every annotation file)")
    f.add_argument("--annotations", metavar="DIR", help="the XML annotation folder (default ROOT/Annotations)")
    f.add_argument("--extended", metavar="CSV",
                   help="SLAVC's metadata/flickr_test_plus_silent.csv: also write flickr_ext.jsonl (extended Flickr; "
                   "`sslsan evaluate --dataset flickr-ext`)")

    for plus in (False, True):
        name = "is3plus" if plus else "is3"
        q = sub.add_parser(name, help=("IS3+ (cleaned IS3; layout assumed, see --help)" if plus else "IS3 test set")
                           + f" -> {name}.jsonl", description=_doc("is3"), formatter_class=raw)
        q.add_argument("--root", required=True,
                       help="IS3+ folder (audio_wav/, category_map.json)" if plus else
                       "IS3 folder (images/, audio_wav/, gt_segmentation/, synthetic3240_bbox.json)")
        q.add_argument("--out", required=True, help="output folder (masks are written under OUT/masks/)")
        if plus:
            q.add_argument("--is3-root", help="the IS3 folder, for images, masks, boxes and categories that the "
                                              "IS3+ folder does not hold")
            q.add_argument("--category-map", help="JSON {fine VGGSound category: simple category} "
                                                  "(default ROOT/category_map.json)")
        q.add_argument("--images", help="image folder (default: images/ or visual_frames/)")
        q.add_argument("--audio", help="audio folder (default: audio_wav/)")
        q.add_argument("--masks", help="mask folder (default: gt_segmentation/ or gt_masks/)")
        q.add_argument("--boxes", help="box file, SSLalignment synthetic3240_bbox.json format (224-pixel xyxy)")
        q.add_argument("--class-dict", help="JSON {category: [stem, ...]} (IS3_class_files_dict.json)")
        q.add_argument("--annotations", help="IS3_annotation.json (categories, when no class dict)")

    a = sub.add_parser("s4", help="AVSBench S4 test split -> s4.jsonl", description=_doc("s4"), formatter_class=raw)
    a.add_argument("--root", required=True, help="AVSBench Single-source/ folder (s4_meta_data.csv, s4_data/)")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (default test)")
    a.add_argument("--boxes", help="SSLalignment s4_box.json (default: boxes derived from the masks)")
    a.add_argument("--meta", help="s4_meta_data.csv (default: looked up in and above --root)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dataset == "vggsound":
        from sslsan.data.prepare.vggsound import VGGSoundConfig, prepare_vggsound, summary_text

        cfg = VGGSoundConfig(videos=args.videos, out=args.out, list_file=args.list_file, subset=args.subset,
                             seed=args.seed, csv=args.csv, workers=args.workers,
                             val_fraction=args.val_fraction, frame_size=args.frame_size,
                             clip_seconds=args.clip_seconds)
        result = prepare_vggsound(cfg, progress=not args.no_progress)
        print(summary_text(result, Path(args.out)))
    elif args.dataset == "vggss":
        from sslsan.data.prepare.vggss import prepare_vggss

        prepare_vggss(args.root, args.out, annotations=args.annotations, ids_file=args.ids,
                      drop_empty_gt=args.drop_empty_gt, videos=args.videos, extended=args.extended)
    elif args.dataset == "flickr":
        from sslsan.data.prepare.flickr import prepare_flickr

        prepare_flickr(args.root, args.out, test_list=args.test_list, annotations=args.annotations,
                       extended=args.extended)
    elif args.dataset in ("is3", "is3plus"):
        from sslsan.data.prepare.is3 import prepare_is3

        plus = args.dataset == "is3plus"
        prepare_is3(args.root, args.out, plus=plus, is3_root=getattr(args, "is3_root", None),
                    images=args.images, audio=args.audio, masks=args.masks, boxes=args.boxes,
                    class_dict=args.class_dict, annotations=args.annotations,
                    category_map=getattr(args, "category_map", None))
    elif args.dataset == "s4":
        from sslsan.data.prepare.s4 import prepare_s4

        prepare_s4(args.root, args.out, split=args.split, boxes=args.boxes, meta=args.meta)
    else:  # a subcommand the parser knows but no branch above runs: a bug, never a silent other dataset
        raise AssertionError(f"sslsan prepare {args.dataset}: no preparation is wired to this subcommand")
    return 0
