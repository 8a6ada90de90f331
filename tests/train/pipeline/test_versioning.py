"""Versioning: content-addressed manifests, tampering detected, atomic writes, diffs."""

from __future__ import annotations

import json

import pytest

from llmkit.train.pipeline.storage import atomic_writer
from llmkit.train.pipeline.versioning import (
    DatasetWriter,
    ManifestMismatchError,
    diff_datasets,
    hash_dataset,
    read_manifest,
    verify_dataset,
    write_manifest_for,
)


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


RECORDS = [{"id": str(i), "text": f"record number {i}"} for i in range(5)]


def test_dataset_hash_is_content_addressed(tmp_path):
    first = _write(tmp_path / "a.jsonl", RECORDS)
    reformatted = tmp_path / "b.jsonl"  # same records, different key order and spacing
    reformatted.write_text(
        "".join(json.dumps(dict(reversed(r.items())), indent=None, separators=(", ", " : ")) + "\n" for r in RECORDS)
    )
    assert hash_dataset(first).dataset_hash == hash_dataset(reformatted).dataset_hash
    reordered = _write(tmp_path / "c.jsonl", RECORDS[::-1])
    assert hash_dataset(first).dataset_hash != hash_dataset(reordered).dataset_hash


def test_manifest_records_config_code_and_parents(tmp_path):
    parent = _write(tmp_path / "parent.jsonl", RECORDS)
    with DatasetWriter(tmp_path / "child.jsonl", "filter", {"keep": "even"}, [hash_dataset(parent)]) as writer:
        for record in RECORDS[::2]:
            writer.write_record(record)
    manifest = verify_dataset(tmp_path / "child.jsonl")
    assert manifest["records"] == 3 and manifest["pipeline"] == {"stage": "filter", "config": {"keep": "even"}}
    assert manifest["parents"][0]["dataset_hash"] == hash_dataset(parent).dataset_hash
    assert manifest["code"]["llmkit-train"] and "python" in manifest["code"]
    hashes = (tmp_path / "child.jsonl.hashes").read_text().split()
    assert len(hashes) == 3 and all(len(h) == 64 for h in hashes)
    assert manifest["dataset_hash"] == hash_dataset(tmp_path / "child.jsonl").dataset_hash


def test_a_manifest_that_does_not_match_its_data_is_detected(tmp_path):
    data = _write(tmp_path / "data.jsonl", RECORDS)
    write_manifest_for(data)
    verify_dataset(data)
    text = data.read_text()
    data.write_text(text.replace("record number 3", "record number 33"))
    with pytest.raises(ManifestMismatchError, match="does not match its manifest"):
        verify_dataset(data)
    data.write_text(text + "\n")  # a blank line: bytes differ, records do not
    with pytest.raises(ManifestMismatchError):
        verify_dataset(data)
    data.write_text(text)
    assert verify_dataset(data, full=False)["records"] == 5
    (tmp_path / "data.jsonl.manifest.json").unlink()
    with pytest.raises(ManifestMismatchError, match="has no manifest"):
        read_manifest(data)


def test_a_failed_write_leaves_the_previous_version(tmp_path):
    data = _write(tmp_path / "data.jsonl", RECORDS)
    write_manifest_for(data)
    with pytest.raises(RuntimeError), DatasetWriter(data, "broken", {}) as writer:
        writer.write_record({"text": "half"})
        raise RuntimeError("crash mid-write")
    verify_dataset(data)  # untouched, still matching
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    with pytest.raises(ValueError), atomic_writer(tmp_path / "new.txt") as handle:
        handle.write("partial")
        raise ValueError
    assert not (tmp_path / "new.txt").exists()


def test_diff_shows_added_removed_and_changed(tmp_path):
    before = _write(tmp_path / "v1.jsonl", RECORDS)
    after_records = [r for r in RECORDS if r["id"] != "1"] + [{"id": "9", "text": "new"}]
    after_records[1] = {"id": "2", "text": "record number 2, edited"}
    after = _write(tmp_path / "v2.jsonl", after_records)
    diff = diff_datasets(before, after)
    assert [r.key for r in diff.added] == ["9"]
    assert [r.key for r in diff.removed] == ["1"]
    assert [(old.key, new.key) for old, new in diff.changed] == [("2", "2")]
    assert diff.unchanged == 3
    keyless = diff_datasets(before, after, key_field=None)
    assert len(keyless.added) == 2 and len(keyless.removed) == 2 and not keyless.changed
    assert diff_datasets(before, before).identical
