"""garak (NVIDIA's LLM vulnerability scanner), unchanged, against a real `llmkit serve` on loopback serving the
default model (run by the nox session `client_garak`, which installs garak): its OpenAI-compatible generator
with three small probe families (base64 encoding, latent prompt injection, a grandma jailbreak), one generation per
prompt, a handful of prompts each; then `llmkit redteam` against the same server, and the comparison table.
No network beyond loopback: garak's data, cache and config directories are the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("garak", reason="garak is installed by the nox session client_garak")
from served import BIN, llmkit_serve

PROBES = ("encoding.InjectBase64", "latentinjection.LatentInjectionTranslationEnFr", "grandma.Substances")
PROMPT_CAP = 3
MAX_TOKENS = 40


@pytest.fixture(scope="module")
def server(smollm2_path, tmp_path_factory):
    """`llmkit serve` (the default model) on loopback; (base url, model name)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    args = ("--model", str(smollm2_path), "--embedding-model", "none")
    with llmkit_serve(*args, log=log, env={"OMP_NUM_THREADS": "1"}) as served:
        yield served


def run_garak(url: str, model: str, home: Path) -> Path:
    """garak's CLI with a config file: the OpenAI-compatible generator pointed at `url`, greedy, 1 generation."""
    options = {"uri": f"{url}/v1/", "api_key": "unused", "max_tokens": MAX_TOKENS, "temperature": 0.0, "stop": []}
    config = {
        "system": {"parallel_attempts": 4, "lite": True, "narrow_output": True},  # concurrent: the engine batches them
        "run": {"generations": 1, "soft_probe_prompt_cap": PROMPT_CAP, "seed": 0},
        "plugins": {
            "target_type": "openai.OpenAICompatible",
            "target_name": model,
            "probe_spec": ",".join(PROBES),
            "generators": {"openai": {"OpenAICompatible": options}},
        },
        "reporting": {"report_dir": str(home / "reports"), "report_prefix": "llmkit"},
    }
    home.mkdir(parents=True, exist_ok=True)
    (home / "garak.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "garak", "--config", str(home / "garak.json")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    print(f"garak took {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (report,) = (home / "reports").glob("llmkit*.report.jsonl")
    return report


def test_garak_and_llmkit_redteam_against_the_same_server(server, tmp_path):
    url, model = server
    garak_report = run_garak(url, model, tmp_path / "garak")
    evals = [json.loads(line) for line in garak_report.read_text().splitlines() if '"entry_type": "eval"' in line]
    assert {e["probe"] for e in evals} == set(PROBES)  # every probe produced per-detector results
    assert all(e["total_evaluated"] >= 1 for e in evals)

    ours = tmp_path / "ours"
    started = time.monotonic()
    command = [
        BIN / "llmkit", "redteam", "run", "--backend", "openai", "--model", model,
        "--backend-option", f"base_url={url}/v1", "--categories", "prompt_injection,harmful",
        "--generators", "direct,base64", "--max-tokens", str(MAX_TOKENS), "-o", str(ours), "--quiet",
    ]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    print(f"llmkit redteam took {time.monotonic() - started:.1f} s")
    report = json.loads((ours / "report.json").read_text())
    assert report["attacks"] == 10 * 2  # 4 injection and 6 harmful seeds, 2 generators
    assert set(report["by_category"]) == {"prompt_injection", "harmful"}

    subprocess.run([BIN / "llmkit", "redteam", "compare-garak", str(ours), str(garak_report)], check=True)
    table = (ours / "garak_comparison.md").read_text()
    rows = json.loads((ours / "garak_comparison.json").read_text())
    print(table)
    overlaps = {row["overlap"] for row in rows if row.get("garak_probe") and row.get("ours")}
    assert overlaps == {"base64 encoding", "prompt injection (goal hijack)", "harmful request not refused"}
    assert all(f"| {name} |" in table for name in overlaps)
