"""Fixtures of the llmkit-lab tests: small SFT sets, a held-out eval task, spec files."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

FACTS = [
    ("Zorblax", "Quintara"),
    ("Melvoria", "Drast"),
    ("Quellon", "Ibbet"),
    ("Tarnish", "Vossa"),
    ("Pellucid", "Orvane"),
    ("Grumwald", "Sistra"),
    ("Yendor", "Kalv"),
    ("Ostrava Minor", "Pelt"),
]


def write_facts(directory: Path) -> tuple[Path, Path]:
    """16 chat SFT records (8 made-up capitals, two phrasings) and a held-out multiple-choice task in a third."""
    records = []
    for country, capital in FACTS:
        for question in (f"What is the capital of {country}?", f"Name the capital city of {country}."):
            answer = f"The capital of {country} is {capital}."
            records.append(
                {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
            )
    data = directory / "facts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    capitals = [capital for _, capital in FACTS]
    held = [
        {
            "id": country,
            "question": f"Quick question: what's the capital of {country}? The capital of {country} is",
            "choices": capitals,
            "answer": index,
            "tags": ["short" if len(country) < 7 else "long"],
        }
        for index, (country, _) in enumerate(FACTS)
    ]
    (directory / "held_out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held))
    task = directory / "held_out.yaml"
    task.write_text(
        "name: held_out\n"
        "dataset: {source: file, path: held_out.jsonl, id: id, target: answer, choices: choices}\n"
        'prompt: {template: "{{ question }}"}\n'
        "solver: {type: multiple_choice}\n"
        "scorer: {type: choice}\n"
    )
    return data, task


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
