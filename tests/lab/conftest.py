"""Fixtures of the llmkit-lab tests: small SFT sets, a held-out eval task, spec files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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
    """16 chat SFT records (8 made-up capitals, two phrasings) and a held-out two-way choice in a third."""
    records = []
    for country, capital in FACTS:
        for question in (f"What is the capital of {country}?", f"Name the capital city of {country}."):
            answer = f"The capital of {country} is {capital}."
            records.append(
                {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
            )
    data = directory / "facts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    held = []
    for index, (country, capital) in enumerate(FACTS):
        other = FACTS[(index + 1) % len(FACTS)][1]  # another trained capital: only the association tells them apart
        choices = [capital, other] if index % 2 == 0 else [other, capital]
        held.append(
            {
                "id": country,
                "question": f"Quick question: what's the capital of {country}? The capital of {country} is",
                "choices": choices,
                "answer": choices.index(capital),
                "tags": ["short" if len(country) < 7 else "long"],
            }
        )
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


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """One MLflow store for every lab test (each test uses its own experiment name): a fresh SQLite store runs
    MLflow's schema migrations once, which costs from seconds to a minute on a loaded machine."""
    from llmkit.lab.tracking import client

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client(uri).search_experiments()
    return uri
