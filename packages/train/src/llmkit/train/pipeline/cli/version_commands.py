"""`llmkit data manifest | verify | diff | mix`."""

from __future__ import annotations

import argparse
import json
import sys

from ...errors import DataError
from ..mixture import ORDERS, MixtureConfig, build_mixture, parse_source_spec
from ..storage import write_text_atomic
from ..versioning import diff_datasets, hash_dataset, verify_dataset, write_manifest_for
from .common import print_summary


def register(commands) -> None:
    manifest = commands.add_parser("manifest", help="version an existing JSONL file: record hashes and a manifest")
    manifest.add_argument("data")
    manifest.add_argument("--stage", default="import", help="what produced the file (default import)")
    manifest.add_argument("--parent", action="append", default=[], help="a JSONL file this one was made from")
    manifest.set_defaults(func=run_manifest)

    verify = commands.add_parser("verify", help="check that a dataset matches its manifest (exit 1 if not)")
    verify.add_argument("data")
    verify.add_argument("--quick", action="store_true", help="compare file bytes only, skip re-hashing records")
    verify.set_defaults(func=run_verify)

    diff = commands.add_parser("diff", help="records added, removed and changed from dataset A to dataset B")
    diff.add_argument("first", metavar="A")
    diff.add_argument("second", metavar="B")
    diff.add_argument(
        "--key", default="id", help="field that identifies a record across versions (default id; '' for none)"
    )
    diff.add_argument("--show", type=int, default=10, help="entries of each kind to print (default 10)")
    diff.add_argument("--output", help="write every difference as JSONL")
    diff.set_defaults(func=run_diff)

    mix = commands.add_parser("mix", help="a weighted mixture or curriculum of sources, with effective proportions")
    mix.add_argument("--source", action="append", required=True, metavar="NAME=PATH[:WEIGHT]", help="repeatable")
    mix.add_argument("--output", "-o", required=True)
    mix.add_argument("--total", type=int, help="records in the mixture (default: the sources' total)")
    mix.add_argument("--temperature", type=float, default=1.0, help="p ∝ weight^(1/T) (default 1)")
    mix.add_argument(
        "--upsample", action="append", default=[], metavar="TAG=FACTOR", help="oversample a tag (repeatable)"
    )
    mix.add_argument("--tag-field", default="tags")
    mix.add_argument("--order", choices=ORDERS, default="shuffle")
    mix.add_argument("--score-field", default="difficulty", help="curriculum: ascending score (easy first)")
    mix.add_argument("--seed", type=int, default=0)
    mix.add_argument("--report", help="write the proportions report as JSON")
    mix.set_defaults(func=run_mix)


def run_manifest(args: argparse.Namespace) -> int:
    manifest = write_manifest_for(args.data, args.stage, {}, [hash_dataset(p) for p in args.parent])
    print_summary({k: manifest[k] for k in ("data", "records", "dataset_hash", "parents")})
    return 0


def run_verify(args: argparse.Namespace) -> int:
    try:
        manifest = verify_dataset(args.data, full=not args.quick)
    except DataError as err:
        print(f"llmkit: {err}", file=sys.stderr)
        return 1
    print(f"{args.data}: OK, {manifest['records']} records, dataset {manifest['dataset_hash']}")
    return 0


def run_diff(args: argparse.Namespace) -> int:
    result = diff_datasets(args.first, args.second, args.key or None)
    print(
        f"{len(result.added)} added, {len(result.removed)} removed, {len(result.changed)} changed, {result.unchanged} unchanged"
    )
    for label, refs in (("+", result.added), ("-", result.removed)):
        for ref in refs[: args.show]:
            print(f"{label} #{ref.index} {ref.key or ''} {ref.record_hash[:12]}")
    for old, new in result.changed[: args.show]:
        print(f"~ {old.key}: #{old.index} {old.record_hash[:12]} -> #{new.index} {new.record_hash[:12]}")
    if args.output:
        rows = [{"change": "added", **vars(r)} for r in result.added]
        rows += [{"change": "removed", **vars(r)} for r in result.removed]
        rows += [{"change": "changed", "before": vars(old), "after": vars(new)} for old, new in result.changed]
        write_text_atomic(args.output, "".join(json.dumps(row) + "\n" for row in rows))
    return 0


def _upsample(specs: list[str]) -> tuple[tuple[str, float], ...]:
    out = []
    for spec in specs:
        tag, _, factor = spec.partition("=")
        try:
            out.append((tag, float(factor)))
        except ValueError:
            raise DataError(f"--upsample {spec!r}: expected TAG=FACTOR") from None
    return tuple(out)


def run_mix(args: argparse.Namespace) -> int:
    config = MixtureConfig(
        sources=tuple(parse_source_spec(s) for s in args.source),
        total=args.total,
        temperature=args.temperature,
        upsample=_upsample(args.upsample),
        tag_field=args.tag_field,
        order=args.order,
        score_field=args.score_field,
        seed=args.seed,
    )
    report = build_mixture(config, args.output)
    if args.report:
        write_text_atomic(args.report, json.dumps(report, indent=2) + "\n")
    print_summary(report)
    return 0
