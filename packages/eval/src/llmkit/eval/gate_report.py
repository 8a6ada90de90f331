"""A gate run for CI: JUnit XML (one test case per rule) and a markdown summary with the flipped items."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .gate import GateOutcome


def _estimate(estimate) -> str:
    return "—" if estimate is None else f"{estimate.value:.4f} [{estimate.low:.4f}, {estimate.high:.4f}]"


def junit_xml(outcomes: list[GateOutcome], suite: str = "llmkit eval gate") -> str:
    failures = sum(not o.passed for o in outcomes)
    root = ET.Element("testsuites", name=suite, tests=str(len(outcomes)), failures=str(failures))
    tests = ET.SubElement(root, "testsuite", name=suite, tests=str(len(outcomes)), failures=str(failures), errors="0")
    for outcome in outcomes:
        case = ET.SubElement(tests, "testcase", classname=outcome.rule.task, name=outcome.rule.name)
        details = (
            f"metric {outcome.metric}, n {outcome.n}, candidate {_estimate(outcome.candidate)}, "
            f"baseline {_estimate(outcome.baseline)}, difference {_estimate(outcome.difference)}"
        )
        if outcome.regressions:
            details += "\nregressed items: " + ", ".join(outcome.regressions)
        if not outcome.passed:
            failure = ET.SubElement(case, "failure", message="; ".join(outcome.reasons), type="GateFailure")
            failure.text = details
        else:
            ET.SubElement(case, "system-out").text = details
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def gate_markdown(outcomes: list[GateOutcome], candidate: str, baseline: str | None, max_items: int = 20) -> str:
    verdict = "PASSED" if all(o.passed for o in outcomes) else "FAILED"
    lines = [
        f"# Release gate {verdict}: {candidate}" + (f" vs {baseline}" if baseline else ""),
        "",
        "| gate | metric | n | baseline | candidate | candidate − baseline | p | detectable drop | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        p = "—" if o.p_value is None else f"{o.p_value:.3g}"
        mde = "—" if o.detectable_drop is None else f"{o.detectable_drop:.4f} (≤ {o.rule.minimum_detectable_effect})"
        result = "pass" if o.passed else "**FAIL**: " + "; ".join(o.reasons)
        lines.append(
            f"| {o.rule.name} | {o.metric} | {o.n} | {_estimate(o.baseline)} | {_estimate(o.candidate)} | "
            f"{_estimate(o.difference)} | {p} | {mde} | {result.replace('|', '/')} |"
        )
    for o in outcomes:
        for kind in ("regressions", "improvements"):
            items = getattr(o, kind)
            if items:
                shown = ", ".join(f"`{i}`" for i in items[:max_items])
                more = f" and {len(items) - max_items} more" if len(items) > max_items else ""
                lines += ["", f"{o.rule.name} {kind} ({len(items)}): {shown}{more}"]
    return "\n".join(lines) + "\n"


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
