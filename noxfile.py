"""Sessions: one per package in a fresh venv with only its declared dependencies, lint, and the demo.

Run everything CI runs with `python -m nox`; one session with `python -m nox -s core`.
torch is pinned to 2.13.0 (a CPU build of that version is on this machine's disk).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import nox

# uv builds the fresh venvs (seconds instead of minutes per torch install). It does not read pip's
# configuration, so point it at the CPU torch wheel on this machine's disk, and seed pip into each
# venv: `llmkit pull` and the dataset fetchers run `python -m pip download`.
nox.options.default_venv_backend = "uv|virtualenv"
if Path("/opt/wheels").is_dir():
    os.environ.setdefault("UV_FIND_LINKS", "/opt/wheels")
os.environ.setdefault("UV_VENV_SEED", "1")

# `python -m nox` runs the session `all`: every test session and lint, in two groups side by side. The machine has two
# cores, and a session spends much of its time installing, building and waiting on the servers it started, so the two
# groups together take far less than the same sessions one after another. `python -m nox -s NAME` runs one session.
SESSION_GROUPS = (
    ("serve", "core", "train", "plugins", "sympy_verifier"),
    ("kernels", "kernels_sanitize", "orchestrate_model", "client_agents", "client_garak", "eval", "context",
     "integration", "orchestrate", "http_fetch", "client_lm_eval", "lab", "lint"),
)  # fmt: skip
nox.options.sessions = ["all"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
TORCH = "torch==2.13.0"

# What the llmkit-kernels wheel is built from (the root pyproject.toml's scikit-build-core configuration).
KERNELS_SOURCES = ("pyproject.toml", "CMakeLists.txt", "csrc", "packages/kernels", "docs/kernels.md")


def kernels_wheel(session: nox.Session) -> str:
    """The llmkit-kernels wheel of the native sources as they are now, built by the first session that needs it and
    installed from the file by the others: one C++/CUDA build per CI run instead of one per session (about 90 s each).
    Keyed by a hash of the sources, so an edit rebuilds it and any session still runs alone (`nox -s NAME`)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for source in KERNELS_SOURCES:
        path = root / source
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if path.is_dir() else [path]  # fmt: skip
        for file in files:
            digest.update(f"{file.relative_to(root)}\0".encode() + file.read_bytes() + b"\0")
    wheels = root / ".nox" / "_wheels"
    wheel_dir = wheels / f"llmkit-kernels-{digest.hexdigest()[:16]}"
    if not wheel_dir.is_dir():
        wheels.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="partial-", dir=wheels))  # its own: two nox runs may build at once
        try:
            if session.venv_backend == "uv":
                session.run("uv", "build", "--wheel", "--out-dir", str(staging), str(root))
            else:
                session.run("python", "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(staging), str(root))
            for stale in wheels.glob("llmkit-kernels-*"):  # wheels of the sources as they were before an edit
                if stale != wheel_dir:
                    shutil.rmtree(stale, ignore_errors=True)
            if not wheel_dir.is_dir():  # else another nox run built the same sources meanwhile
                staging.rename(wheel_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    (wheel,) = wheel_dir.glob("llmkit_kernels-*.whl")
    session.log(f"llmkit-kernels from {wheel.relative_to(root)}")
    return str(wheel)


@nox.session(name="all", python=False)
def all_sessions(session: nox.Session) -> None:
    """The sessions of SESSION_GROUPS, the groups side by side (each a `python -m nox -s ...` of its own); every line
    of output carries its group's number, and the run fails when any session failed."""
    grouped = [name for group in SESSION_GROUPS for name in group]
    left_out = set(nox.registry.get()) - {"all", "demo"} - set(grouped)
    if left_out or len(grouped) != len(set(grouped)):
        session.error(f"SESSION_GROUPS must name every session once; not in a group: {sorted(left_out)}")
    extra = ["--", *session.posargs] if session.posargs else []
    runs = []
    for number, group in enumerate(SESSION_GROUPS, 1):
        command = [sys.executable, "-m", "nox", "--noxfile", __file__, "-s", *group, *extra]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            # One torch (and native-kernel) thread per group: with both groups busy, a two-thread torch region waits
            # on a thread the other group's work has descheduled (the serve session took 3.6x as long that way).
            # Unbuffered: pytest's progress as it happens, not in 8 KiB blocks through the pipe.
            env={"OMP_NUM_THREADS": "1", **os.environ, "PYTHONUNBUFFERED": "1"},
        )
        relay = threading.Thread(target=_relay, args=(process.stdout, f"[{number}] "))
        relay.start()
        runs.append((group, process, relay))
    failed = []
    for group, process, relay in runs:
        if process.wait() != 0:
            failed.append(group)
        relay.join()
    if failed:
        session.error(f"failed: the group(s) {', '.join(' '.join(g) for g in failed)} (see their lines above)")


def _relay(stream, prefix: str) -> None:
    for line in stream:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """llmkit-core alone: its tests against the golden ids, HF transformers and the CLI."""
    session.install(TORCH, "./packages/core[test]")
    session.run("pytest", "tests/core", *session.posargs)


@nox.session(python=PYTHON)
def plugins(session: nox.Session) -> None:
    """The third-party-style plugin under plugins/, installed beside core and used by name."""
    session.install(TORCH, "./packages/core[test]", "./plugins/llmkit-typical")
    session.run("pytest", "tests/plugins", *session.posargs)


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """llmkit-serve with core only (native kernels not installed: the engine runs the op references)."""
    session.install(TORCH, "./packages/core", "./packages/serve[test]")
    session.run("pytest", "tests/serve", *session.posargs)


@nox.session(python=PYTHON, name="eval")
def eval_(session: nox.Session) -> None:
    """llmkit-eval with core only: stats, pass@k, HumanEval in the sandbox, judges, runs, the report in Chromium.
    Then the agent-injection tests, which run llmkit-orchestrate's agents (eval imports it only for those tasks)."""
    session.install(TORCH, "./packages/core", "./packages/eval[test]")
    agent_tests = sorted(str(p) for p in Path("tests/eval").glob("test_safety_agent_injection*.py"))
    session.run("pytest", "tests/eval", "--ignore-glob=tests/eval/test_safety_agent_injection*.py", *session.posargs)
    session.install("./packages/context", "./packages/orchestrate")
    session.run("pytest", *agent_tests, *session.posargs)


@nox.session(python=PYTHON)
def context(session: nox.Session) -> None:
    """llmkit-context with core only: windows and budgets, compression, retrieval (MiniLM fetched once), memory, CLI."""
    session.install(TORCH, "./packages/core", "./packages/context[test]")
    session.run("pytest", "tests/context", *session.posargs)


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Tests across packages: context with the serve engine (prefix-cache hits) and with eval's probes; and the
    engine's image steps on the native fused forward (serve's own session runs without the native kernels)."""
    session.install(TORCH, "./packages/core", "./packages/serve[test]", kernels_wheel(session), "./packages/eval", "./packages/context[test]")  # fmt: skip
    session.run("pytest", "tests/integration", *session.posargs)
    session.run("pytest", "tests/serve/test_images_engine.py", "-k", "native_forward", *session.posargs)


@nox.session(python=PYTHON)
def train(session: nox.Session) -> None:
    """llmkit-train with core and serve: losses by hand and against TRL, masks on SmolLM2's template, resume after kill, DDP/FSDP2 on gloo."""
    session.install(TORCH, "./packages/core", "./packages/serve", "./packages/train[test,trl,ray]")
    session.run("pytest", "tests/train", *session.posargs)


@nox.session(python=PYTHON)
def orchestrate(session: nox.Session) -> None:
    """llmkit-orchestrate with core and context only: tools, sandbox escapes, ReAct/plan/hierarchy/multi-agent
    control flow on a scripted backend, gates, injection, checkpoints, MCP both ways, the CLI."""
    session.install(TORCH, "./packages/core", "./packages/context", "./packages/orchestrate[test]")
    session.run("pytest", "tests/orchestrate", *session.posargs)


@nox.session(python=PYTHON)
def orchestrate_model(session: nox.Session) -> None:
    """llmkit-orchestrate end to end on the default model: the engine (llmkit-serve, found by name) with the native
    kernels, whose grammar matcher makes constrained tool calls fast enough to test."""
    session.install(TORCH, "./packages/core", "./packages/serve", kernels_wheel(session), "./packages/context", "./packages/orchestrate[test]")  # fmt: skip
    # One torch thread: a 135M model decodes no faster on two, and oversubscribed shared cores made it 3x slower.
    session.run("pytest", "tests/orchestrate/test_default_model.py", *session.posargs, env={"OMP_NUM_THREADS": "1"})


@nox.session(python=PYTHON)
def http_fetch(session: nox.Session) -> None:
    """The third-party-style tool plugin under plugins/llmkit-http-fetch, beside core, context and orchestrate."""
    session.install(TORCH, "./packages/core", "./packages/context", "./packages/orchestrate", "./plugins/llmkit-http-fetch[test]")  # fmt: skip
    session.run("pytest", "tests/plugins/test_http_fetch.py", *session.posargs)


@nox.session(python=PYTHON)
def sympy_verifier(session: nox.Session) -> None:
    """The third-party-style verifier plugin under plugins/llmkit-sympy-verifier, installed beside core alone."""
    session.install(TORCH, "./packages/core", "./plugins/llmkit-sympy-verifier", "pytest")
    session.run("pytest", "tests/plugins/test_sympy_verifier.py", *session.posargs)


@nox.session(python=PYTHON)
def kernels(session: nox.Session) -> None:
    """llmkit-kernels built from source (C++; CUDA too when nvcc is found) against the op references."""
    session.install(TORCH, "./packages/core", f"{kernels_wheel(session)}[test]")
    session.run("pytest", "tests/kernels", *session.posargs)


@nox.session(python=PYTHON)
def kernels_sanitize(session: nox.Session) -> None:
    """The kernel tests on an AddressSanitizer + UndefinedBehaviorSanitizer build of the CPU kernels."""
    session.install(TORCH, "./packages/core", "pytest", "hypothesis")
    session.install(
        ".",
        "-C",
        "cmake.define.LLMKIT_SANITIZE=ON",
        "-C",
        "cmake.define.LLMKIT_CUDA=OFF",
        "-C",
        "build-dir=build/sanitize",
    )
    libasan = session.run("gcc", "-print-file-name=libasan.so", silent=True, external=True).strip()
    libstdcxx = session.run("g++", "-print-file-name=libstdc++.so.6", silent=True, external=True).strip()
    env = {
        # The ASan runtime must load first, and libstdc++ with it so ASan finds the real __cxa_throw.
        "LD_PRELOAD": f"{libasan} {libstdcxx}",
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",  # CPython and torch keep allocations to exit
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }
    # The whole-model golden runs (a minute each under ASan) add no code path that the tiny-model fused-forward
    # tests do not already run; the plain kernels session keeps them.
    session.run("pytest", "tests/kernels", "--deselect", "tests/kernels/test_golden_as_stored.py", *session.posargs, env=env)  # fmt: skip


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """llmkit's main job on the default model: pull it, serve it, answer a request, stop the server."""
    session.install(TORCH, "./packages/core", "./packages/serve", ".")
    session.run("llmkit", "pull")
    session.run(
        "bash",
        "-c",
        'llmkit serve --port 8765 & trap "kill $!" EXIT; llmkit query "What is the capital of France?" --url http://127.0.0.1:8765',
        external=True,
    )


@nox.session(python=PYTHON)
def client_lm_eval(session: nox.Session) -> None:
    """lm-evaluation-harness, unchanged, against a real `llmkit serve` on loopback: local-completions on a
    multiple-choice task and local-chat-completions on a generate-until task (local files, no hub), equal
    to `llmkit eval run` on the same items."""
    # transformers: lm-eval's local-completions counts context tokens with a Hugging Face tokenizer.
    session.install(TORCH, "./packages/core", "./packages/serve", "./packages/eval", "lm_eval[api]==0.4.13", "transformers==5.25.0", "pytest", "httpx")  # fmt: skip
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    session.run("pytest", "tests/clients/test_lm_eval.py", *session.posargs, env=env)


@nox.session(python=PYTHON)
def client_agents(session: nox.Session) -> None:
    """The OpenAI Agents SDK, unchanged, against a real `llmkit serve` (the default model) on loopback: an Agent's
    `@function_tool` called through the generic tool-call format, then a final answer from the history."""
    # ".": the native kernels, whose grammar matcher keeps the default model's constrained turns fast.
    session.install(TORCH, "./packages/core", "./packages/serve", kernels_wheel(session), "openai-agents==0.24.0", "pytest", "httpx")  # fmt: skip
    session.run("pytest", "tests/clients/test_openai_agents.py", *session.posargs, env={"OMP_NUM_THREADS": "1"})


@nox.session(python=PYTHON)
def client_garak(session: nox.Session) -> None:
    """garak (LLM vulnerability scanner), unchanged, against a real `llmkit serve` (the default model) on loopback:
    its OpenAI-compatible generator on four small probe families, then `llmkit redteam` on the same server and the
    comparison table. garak 0.17.1 resolves with torch 2.13.0 (no conflict) but pulls ~180 packages (its cloud
    generators' SDKs, about 25 s with uv); a hand-picked --no-deps subset was not attempted."""
    # the kernels wheel: the native forward serves the default model several times faster than the torch reference.
    session.install(TORCH, "./packages/core", "./packages/serve", "./packages/eval", kernels_wheel(session), "garak==0.17.1", "pytest", "httpx")  # fmt: skip
    session.run("pytest", "tests/clients/test_garak.py", "-s", *session.posargs, env={"OMP_NUM_THREADS": "1"})


@nox.session(python=PYTHON)
def lab(session: nox.Session) -> None:
    """llmkit-lab with train and eval: spec refusals, resume after a kill, phases, and a LoRA-rank ablation on the
    default model (2 arms x 2 seeds, 2 steps each) with the MLflow store read back."""
    session.install(TORCH, "./packages/core", "./packages/serve", "./packages/train", "./packages/eval", "./packages/context", "./packages/orchestrate", "./packages/lab[test]")  # fmt: skip
    session.run("pytest", "tests/lab", *session.posargs, env={"OMP_NUM_THREADS": "1"})
