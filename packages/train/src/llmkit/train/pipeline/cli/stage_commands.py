"""`llmkit data dedup` and `llmkit data contamination`."""

from __future__ import annotations

import argparse

from ..contamination import ContaminationConfig, check_contamination, load_eval_sources
from ..dedup import DedupConfig, deduplicate_file
from ..dedup.features import NEAR_VERIFICATIONS
from ..embedders import EMBEDDER_SPECS
from .common import add_executor_arguments, executor_from, print_summary, split_fields


def register(commands) -> None:
    dedup = commands.add_parser(
        "dedup", help="drop exact, near and semantic duplicates; write kept records and a cluster report"
    )
    dedup.add_argument("input", help="JSONL records")
    dedup.add_argument("--output", "-o", required=True, help="kept records (JSONL, with manifest)")
    dedup.add_argument("--report", required=True, help="dropped records: representative, stage, similarity (JSONL)")
    dedup.add_argument("--fields", help="comma-separated text fields (default: the record's known text fields)")
    dedup.add_argument("--no-exact", action="store_true", help="skip exact (normalized hash) dedup")
    dedup.add_argument("--no-near", action="store_true", help="skip near-duplicate (MinHash LSH) dedup")
    dedup.add_argument("--semantic", action="store_true", help="also drop paraphrases by embedding similarity")
    dedup.add_argument("--near-threshold", type=float, default=0.7, help="shingle Jaccard (default 0.7)")
    dedup.add_argument(
        "--near-verification",
        choices=NEAR_VERIFICATIONS,
        default="exact",
        help="confirm LSH candidates by exact shingle-set Jaccard (default) or by the MinHash estimate only",
    )
    dedup.add_argument("--semantic-threshold", type=float, default=0.9, help="cosine similarity (default 0.9)")
    dedup.add_argument("--ngram", type=int, default=3, help="word shingle size for MinHash (default 3)")
    dedup.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (default 128)")
    dedup.add_argument("--embedder", default="minilm", help=EMBEDDER_SPECS)
    dedup.add_argument("--seed", type=int, default=1)
    add_executor_arguments(dedup)
    dedup.set_defaults(func=run_dedup)

    contamination = commands.add_parser(
        "contamination", help="eval items found in a training set: 13-gram overlap and semantic near-matches"
    )
    contamination.add_argument("--train", required=True, help="training records (JSONL)")
    contamination.add_argument(
        "--eval", action="append", default=[], help="eval JSONL file or registered dataset name (repeatable)"
    )
    contamination.add_argument(
        "--known", action="store_true", help="check every registered dataset (llmkit-eval's benchmarks)"
    )
    contamination.add_argument("--report", required=True, help="one row per eval item (JSONL)")
    contamination.add_argument("--decontaminated", help="also write the training records that touch no eval item")
    contamination.add_argument("--ngram", type=int, default=13, help="overlap n-gram size (default 13, as GPT-3)")
    contamination.add_argument("--fields", help="training text fields (comma-separated)")
    contamination.add_argument("--eval-fields", help="text fields of eval JSONL files (comma-separated)")
    contamination.add_argument("--semantic", action="store_true", help="also find semantic near-matches")
    contamination.add_argument("--semantic-threshold", type=float, default=0.85, help="cosine (default 0.85)")
    contamination.add_argument("--embedder", default="minilm", help=EMBEDDER_SPECS)
    add_executor_arguments(contamination)
    contamination.set_defaults(func=run_contamination)


def run_dedup(args: argparse.Namespace) -> int:
    config = DedupConfig(
        exact=not args.no_exact,
        near=not args.no_near,
        semantic=args.semantic,
        fields=split_fields(args.fields),
        ngram=args.ngram,
        num_perm=args.num_perm,
        near_threshold=args.near_threshold,
        near_verification=args.near_verification,
        semantic_threshold=args.semantic_threshold,
        embedder=args.embedder,
        seed=args.seed,
    )
    with executor_from(args) as executor:
        summary = deduplicate_file(
            args.input, args.output, args.report, config, executor, batch_size=args.batch_size, quiet=args.quiet
        )
    print_summary(summary.as_dict())
    return 0


def run_contamination(args: argparse.Namespace) -> int:
    items = load_eval_sources([*args.eval, *(["known"] if args.known else [])], split_fields(args.eval_fields))
    config = ContaminationConfig(
        ngram=args.ngram,
        semantic=args.semantic,
        semantic_threshold=args.semantic_threshold,
        embedder=args.embedder,
        fields=split_fields(args.fields),
    )
    with executor_from(args) as executor:
        summary = check_contamination(
            args.train,
            items,
            args.report,
            config,
            executor,
            decontaminated=args.decontaminated,
            batch_size=args.batch_size,
            quiet=args.quiet,
        )
    print_summary(summary)
    return 0
