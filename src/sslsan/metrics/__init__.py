"""NumPy metrics of SSL-SaN, faithful to the reference evaluation (docs/metrics.md).

NumPy in, Python floats / arrays out; no torch. Percent-valued metrics are 0-100.

Maps and GT: `upsample` (cv2 INTER_LINEAR), `count_above`, `gt_map_from_boxes`,
`boxes_to_pixels`, `gt_map_from_mask`.
Thresholds: `adaptive_threshold`, `median_threshold`, `universal_threshold` (DECISIONS D6), `per_type_quantiles`.
Per map: `ciou`, `pia`. Over entries: `auc`, `aucn`, `f_score`.
Everything of Table 2 at once: `localization_metrics` (= `aggregate_localization` of
`localization_scores`); the classic relative protocol of older papers:
`classic_localization_metrics`, `minmax_normalize`.
Table 1: `separability`, `alignment_magnitude` (D11). Table 3: `retrieval` (D12).
Other protocols of the field, bit for bit as their original code: SLAVC's extended protocol (AP, max-F1,
LocAcc over sounding and non-sounding pairs): `extended_metrics` (`ExtendedProtocol` settings),
`slavc_sample_scores`, `slavc_metrics`, `slavc_ap`, `slavc_f1`, `slavc_locacc`, `slavc_precision_recall`;
SSL-Align's per-image iIoU / iAUC: `instance_protocol_metrics`, `instance_sample_scores`, `instance_metrics`.
"""

from sslsan.metrics.common import AUC_GRID, MAP_SIZE, MetricsError
from sslsan.metrics.embedding import alignment_magnitude, separability
from sslsan.metrics.extended import (
    ExtendedProtocol,
    extended_metrics,
    extended_scores,
    slavc_ap,
    slavc_f1,
    slavc_locacc,
    slavc_metrics,
    slavc_precision_recall,
    slavc_sample_scores,
)
from sslsan.metrics.groundtruth import boxes_to_pixels, gt_map_from_boxes, gt_map_from_mask
from sslsan.metrics.instance import instance_metrics, instance_protocol_metrics, instance_sample_scores
from sslsan.metrics.localization import (
    NEGATIVE_TYPES,
    aggregate_localization,
    auc,
    aucn,
    ciou,
    classic_localization_metrics,
    f_score,
    localization_metrics,
    localization_scores,
    minmax_normalize,
    pia,
)
from sslsan.metrics.resample import UPSAMPLE_MODES, count_above, upsample
from sslsan.metrics.retrieval import retrieval
from sslsan.metrics.thresholds import (
    adaptive_threshold,
    median_threshold,
    per_type_quantiles,
    universal_threshold,
)

__all__ = [
    "AUC_GRID",
    "ExtendedProtocol",
    "extended_metrics",
    "extended_scores",
    "instance_metrics",
    "instance_protocol_metrics",
    "instance_sample_scores",
    "slavc_ap",
    "slavc_f1",
    "slavc_locacc",
    "slavc_metrics",
    "slavc_precision_recall",
    "slavc_sample_scores",
    "MAP_SIZE",
    "MetricsError",
    "NEGATIVE_TYPES",
    "adaptive_threshold",
    "aggregate_localization",
    "alignment_magnitude",
    "auc",
    "aucn",
    "boxes_to_pixels",
    "ciou",
    "classic_localization_metrics",
    "UPSAMPLE_MODES",
    "count_above",
    "f_score",
    "gt_map_from_boxes",
    "gt_map_from_mask",
    "localization_metrics",
    "localization_scores",
    "median_threshold",
    "minmax_normalize",
    "pia",
    "retrieval",
    "separability",
    "universal_threshold",
    "per_type_quantiles",
    "upsample",
]
