"""Dataset names → manifest files inside a prepared data root.

`sslsan data synth --out DIR` and `sslsan prepare NAME --out DIR` write these files; `sslsan evaluate
--dataset NAME --data-root DIR` reads them. `calibration` names the manifest used to calibrate the
universal threshold (DECISIONS D6) when the data root has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    manifest: str  # file name inside the data root
    description: str
    calibration: str | None = None  # manifest (inside the data root) for threshold calibration
    gt: str = "boxes"  # "boxes" (union of the boxes, reference protocol), "consensus" (Flickr annotators) or "mask"
    groups: bool = False  # samples sharing a `group` are the annotations of one image: SSL-Align's iIoU / iAUC
    made_by: str = ""  # the command that writes the manifest (default: `sslsan prepare NAME` / `data synth`)

    @property
    def command(self) -> str:
        return self.made_by or ("sslsan data synth" if self.name.startswith("synth") else f"sslsan prepare {self.name}")


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("synth-vggss", "test_vggss.jsonl", "embedded benchmark, VGG-SS protocol (one sounding object, boxes)", "val.jsonl"),
        DatasetInfo("synth-is3", "test_is3.jsonl", "embedded benchmark, IS3 protocol (two objects, one annotation per sound)", "val.jsonl",
                    groups=True),
        DatasetInfo("synth-vggss-ext", "test_vggss_ext.jsonl", "embedded benchmark, SLAVC's extended protocol "
                    "(synth-vggss plus each image with a sound whose source is not in it)", "val.jsonl"),
        DatasetInfo("synth-val", "val.jsonl", "embedded benchmark validation split"),
        DatasetInfo("vggss", "vggss.jsonl", "VGG-SS test set (sslsan prepare vggss)"),
        DatasetInfo("vggss-ext", "vggss_ext.jsonl", "extended VGG-SS (SLAVC): VGG-SS plus its non-sounding pairs",
                    made_by="sslsan prepare vggss --extended vggss_test_plus_silent.csv"),
        DatasetInfo("flickr", "flickr.jsonl", "Flickr-SoundNet test set, 250 pairs (sslsan prepare flickr)", gt="consensus"),
        DatasetInfo("flickr-ext", "flickr_ext.jsonl", "extended Flickr (SLAVC): Flickr-SoundNet plus its non-sounding pairs",
                    gt="consensus", made_by="sslsan prepare flickr --extended flickr_test_plus_silent.csv"),
        DatasetInfo("is3", "is3.jsonl", "IS3 test set (sslsan prepare is3)", groups=True),
        DatasetInfo("is3plus", "is3plus.jsonl", "IS3+ test set (sslsan prepare is3plus)", groups=True),
        DatasetInfo("s4", "s4.jsonl", "AVSBench S4 test split (sslsan prepare s4)"),
    ]
}


def dataset_manifest(name: str, data_root: str | Path) -> Path:
    """Path of dataset `name`'s manifest under `data_root`, with a clear error when absent."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    path = Path(data_root) / DATASETS[name].manifest
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no manifest for dataset {name!r} under {data_root} "
            f"(create it with `{DATASETS[name].command}`)"
        )
    return path
