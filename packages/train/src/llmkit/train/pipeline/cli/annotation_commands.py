"""`llmkit data agreement` and `llmkit data bradley-terry`."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Hashable

from ...errors import DataError
from ..annotation import agreement_report, bradley_terry, honeypot_accuracy, load_annotations, pairs_from_ranking
from ..annotation.krippendorff import LEVELS
from ..records import iter_lines, parse_record
from .common import print_summary


def register(commands) -> None:
    agreement = commands.add_parser(
        "agreement", help="inter-annotator agreement (Cohen, Fleiss, Krippendorff) and honeypot accuracy"
    )
    agreement.add_argument("annotations", help='JSONL rows {"item", "annotator", "label"}')
    agreement.add_argument("--level", choices=LEVELS, default="nominal", help="Krippendorff level (default nominal)")
    agreement.add_argument(
        "--order",
        help="the labels' order, lowest first, comma-separated (e.g. bad,ok,good): needed for ordinal labels "
        "that are not numbers; numbers are ordered numerically without it",
    )
    agreement.add_argument("--item-field", default="item")
    agreement.add_argument("--annotator-field", default="annotator")
    agreement.add_argument("--label-field", default="label")
    agreement.add_argument("--gold", help='honeypot answers: JSONL rows {"item", "label"}')
    agreement.add_argument("--honeypot-threshold", type=float, default=0.8, help="flag below this accuracy (0.8)")
    agreement.add_argument("--min-honeypots", type=int, default=5, help="honeypots needed before flagging (5)")
    agreement.set_defaults(func=run_agreement)

    preferences = commands.add_parser("bradley-terry", help="scores from pairwise or ranked preferences")
    preferences.add_argument(
        "preferences",
        help='JSONL rows {"winner", "loser"}, {"first", "second", "result": 1|0.5|0} or {"ranking": [best, ...]}',
    )
    preferences.add_argument("--prior", type=float, default=1.0, help="virtual games per item, half won (default 1)")
    preferences.set_defaults(func=run_bradley_terry)


def run_agreement(args: argparse.Namespace) -> int:
    annotations = load_annotations(args.annotations, args.item_field, args.annotator_field, args.label_field)
    gold = {}
    if args.gold:
        for number, line in iter_lines(args.gold):
            row = parse_record(line, f"{args.gold}:{number}")
            if args.item_field not in row or args.label_field not in row:
                raise DataError(f"{args.gold}:{number}: needs {args.item_field!r} and {args.label_field!r}")
            gold[row[args.item_field]] = row[args.label_field]
    scored = [a for a in annotations if a[1] not in gold]
    order = declared_order(args.order, [label for _, _, label in scored]) if args.order else None
    report = agreement_report(scored, args.level, order)
    if gold:
        results = honeypot_accuracy(annotations, gold, args.honeypot_threshold, args.min_honeypots)
        report["honeypots"] = [dataclasses.asdict(r) for r in results]
        report["flagged_annotators"] = [r.annotator for r in results if r.flagged]
    print_summary(report)
    return 0


def declared_order(spec: str, labels: list[Hashable]) -> list[Hashable]:
    """`--order a,b,c` as the labels it names: an entry matches the label whose text it is (`10` names the
    number 10 of a JSON row); an entry no row uses stays a text category."""
    by_text: dict[str, Hashable] = {}
    for label in labels:
        if by_text.setdefault(str(label), label) != label:
            raise DataError(f"--order cannot tell apart labels {by_text[str(label)]!r} and {label!r}")
    entries = [entry.strip() for entry in spec.split(",")]
    if any(not entry for entry in entries):
        raise DataError(f"--order {spec!r} has an empty entry")
    return [by_text.get(entry, entry) for entry in entries]


def _comparisons(path: str):
    for number, line in iter_lines(path):
        where = f"{path}:{number}"
        row = parse_record(line, where)
        if "ranking" in row and isinstance(row["ranking"], list):
            yield from pairs_from_ranking(row["ranking"])
        elif "winner" in row and "loser" in row:
            yield row["winner"], row["loser"]
        elif {"first", "second", "result"} <= set(row):
            yield row["first"], row["second"], float(row["result"])
        else:
            raise DataError(f"{where}: expected winner/loser, first/second/result or ranking")


def run_bradley_terry(args: argparse.Namespace) -> int:
    scores = bradley_terry(list(_comparisons(args.preferences)), prior=args.prior)
    rows = [
        {
            "item": item,
            "strength": round(strength, 6),
            "wins": float(scores.wins[scores.items.index(item)]),
            "games": float(scores.games[scores.items.index(item)]),
        }
        for item, strength in scores.ranking()
    ]
    print_summary({"items": len(rows), "iterations": scores.iterations, "prior": args.prior, "ranking": rows})
    return 0
