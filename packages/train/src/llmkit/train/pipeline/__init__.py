"""llmkit-train's data pipeline: dedup, contamination, versions, mixtures, annotation quality, AI feedback.

Stages are functions over record batches that stream JSONL (bounded memory); they run inline, on a
local process pool, or on Ray Data. `llmkit data ...` exposes each one; see docs/data.md.
"""

from .annotation import (
    agreement_report,
    bradley_terry,
    cohen_kappa,
    fleiss_kappa,
    honeypot_accuracy,
    krippendorff_alpha,
)
from .contamination import ContaminationConfig, EvalItem, check_contamination, check_records, load_eval_sources
from .dedup import DedupConfig, Deduplicator, DroppedRecord, deduplicate_file, deduplicate_records
from .embedders import HashingEmbedder, LanguageModelEmbedder, open_embedder
from .execution import InlineExecutor, ProcessPoolBatchExecutor, RayDataExecutor, make_executor
from .feedback import (
    Constitution,
    PreferenceItem,
    critique_and_revise,
    default_constitution,
    label_preferences,
    load_constitution,
)
from .mixture import MixtureConfig, MixtureSource, build_mixture
from .versioning import DatasetWriter, ManifestMismatchError, diff_datasets, verify_dataset, write_manifest_for

__all__ = [
    "Constitution",
    "ContaminationConfig",
    "DatasetWriter",
    "DedupConfig",
    "Deduplicator",
    "DroppedRecord",
    "EvalItem",
    "HashingEmbedder",
    "InlineExecutor",
    "LanguageModelEmbedder",
    "ManifestMismatchError",
    "MixtureConfig",
    "MixtureSource",
    "PreferenceItem",
    "ProcessPoolBatchExecutor",
    "RayDataExecutor",
    "agreement_report",
    "bradley_terry",
    "build_mixture",
    "check_contamination",
    "check_records",
    "cohen_kappa",
    "critique_and_revise",
    "deduplicate_file",
    "deduplicate_records",
    "default_constitution",
    "diff_datasets",
    "fleiss_kappa",
    "honeypot_accuracy",
    "krippendorff_alpha",
    "label_preferences",
    "load_constitution",
    "load_eval_sources",
    "make_executor",
    "open_embedder",
    "verify_dataset",
    "write_manifest_for",
]
