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
    gt: str = "boxes"  # "boxes" (reference protocol) or "mask"


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("synth-vggss", "test_vggss.jsonl", "embedded benchmark, VGG-SS protocol (one sounding object, boxes)", "val.jsonl"),
        DatasetInfo("synth-is3", "test_is3.jsonl", "embedded benchmark, IS3 protocol (two objects, one annotation per sound)", "val.jsonl"),
        DatasetInfo("synth-val", "val.jsonl", "embedded benchmark validation split"),
        DatasetInfo("vggss", "vggss.jsonl", "VGG-SS test set (sslsan prepare vggss)"),
        DatasetInfo("is3", "is3.jsonl", "IS3 test set (sslsan prepare is3)"),
        DatasetInfo("is3plus", "is3plus.jsonl", "IS3+ test set (sslsan prepare is3plus)"),
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
            f"(create it with `sslsan {'data synth' if name.startswith('synth') else 'prepare ' + name}`)"
        )
    return path
