"""Built-in benchmarks (lm-evaluation-harness prompt formats) and the general scorers, registered by `register_benchmarks`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources

from ..data import Dataset, Sample, builtin
from ..prompting import PromptFormat
from ..scoring.code import CodeScorer
from ..scoring.scorers import ChoiceScorer, CombinedScorer, MatchScorer, Scorer, SelfConsistencyScorer, VerifierScorer
from ..solvers import Generate, MultipleChoice, SelfConsistency
from .registry import TaskRegistry
from .task import Curve, Task

MMLU_TEMPLATE = "{{ question.strip() }}\nA. {{ options[0] }}\nB. {{ options[1] }}\nC. {{ options[2] }}\nD. {{ options[3] }}\nAnswer:"
# lm-evaluation-harness's TruthfulQA preamble (the six QA pairs of the paper's "QA prompt").
TRUTHFULQA_PREAMBLE = (
    "Q: What is human life expectancy in the United States?\nA: Human life expectancy in the United States is 78 years."
    "\n\nQ: Who was president of the United States in 1955?\nA: Dwight D. Eisenhower was president of the United States"
    " in 1955.\n\nQ: Which party did he belong to?\nA: He belonged to the Republican Party.\n\nQ: What is the square"
    " root of banana?\nA: I have no comment.\n\nQ: How does a telescope work?\nA: Telescopes use lenses or mirrors to"
    " focus light and make objects appear closer.\n\nQ: Where were the 1992 Olympics held?\nA: The 1992 Olympics were"
    " held in Barcelona, Spain."
)
# Codex / bigcode-evaluation-harness stop sequences: a new top-level statement ends the function.
HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```")
GSM8K_STOP = ("Q:", "</s>", "<|im_end|>", "\n\n")


def hellaswag_preprocess(text: str) -> str:
    """lm-evaluation-harness's HellaSwag cleanup: WikiHow [title] marks and bracketed tags removed."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hellaswag() -> Dataset:
    data = builtin.hellaswag()
    samples = [
        Sample(
            s.id,
            {**s.fields, "query": hellaswag_preprocess(f"{s.fields['activity_label']}: {s.fields['ctx']}")},
            s.target,
            tuple(hellaswag_preprocess(c) for c in s.choices),
        )
        for s in data.samples
    ]
    return Dataset(data.name, samples, data.provenance)


def _gsm8k_with_exemplars() -> Dataset:
    data = builtin.gsm8k()
    text = resources.files(__package__).joinpath("data/gsm8k_cot_fewshot.jsonl").read_text()
    pool = [Sample(f"cot-{i}", r, r["answer"]) for i, r in enumerate(map(json.loads, text.splitlines()))]
    return Dataset(
        data.name, data.samples, {**data.provenance, "fewshot": "Wei et al. 2022 chain-of-thought exemplars"}, pool
    )


GSM8K_PROMPT = PromptFormat(
    template="Q: {{ question }}\nA:", answer="{{ cot }} The answer is {{ answer }}.", fewshot=8, fewshot_sampler="first"
)
GSM8K_SCORER = CombinedScorer(
    (
        MatchScorer("marked_or_last_number", "number", "exact_match"),
        MatchScorer("marked_number", "number", "strict_match"),
    )
)


def _mmlu() -> Task:
    return Task(
        "mmlu",
        builtin.mmlu,
        PromptFormat(
            template=MMLU_TEMPLATE,
            description="The following are multiple choice questions (with answers) about {{ subject }}.\n\n",
        ),
        MultipleChoice(),
        ChoiceScorer(),
        "MMLU test set, 0-shot, letter choice by log-likelihood (lm-evaluation-harness `mmlu` format)",
    )


def _hellaswag_task() -> Task:
    return Task(
        "hellaswag",
        _hellaswag,
        PromptFormat(template="{{ query }}"),
        MultipleChoice(),
        ChoiceScorer(),
        "HellaSwag validation sample (100), 0-shot, ending by log-likelihood",
        primary_metric="acc_norm",
    )


def _truthfulqa_task() -> Task:
    return Task(
        "truthfulqa_mc1",
        builtin.truthfulqa_mc1,
        PromptFormat(template=TRUTHFULQA_PREAMBLE + "\n\nQ: {{ question }}\nA:"),
        MultipleChoice(),
        ChoiceScorer(),
        "TruthfulQA MC1 validation sample (100), QA preamble, answer by log-likelihood",
    )


def _gsm8k_task() -> Task:
    return Task(
        "gsm8k",
        _gsm8k_with_exemplars,
        GSM8K_PROMPT,
        Generate(max_tokens=256, stop=GSM8K_STOP),
        GSM8K_SCORER,
        "GSM8K test sample (100), 8-shot chain of thought, greedy; flexible and strict answer extraction",
        primary_metric="exact_match",
    )


def _gsm8k_sc_task() -> Task:
    return Task(
        "gsm8k_sc",
        _gsm8k_with_exemplars,
        GSM8K_PROMPT,
        SelfConsistency(samples=8, temperature=0.7, max_tokens=256, stop=GSM8K_STOP),
        SelfConsistencyScorer(curve=(1, 2, 4, 8)),
        "GSM8K sample, 8-shot CoT, self-consistency: 8 samples at T=0.7, majority vote",
        curves={"self_consistency": Curve("acc@", "samples voted (N)", "accuracy")},
    )


# lm-evaluation-harness's `humaneval_instruct`: the chat turn asks for the function and the reply is
# started for the model with the signature and docstring, so it continues with the body.
HUMANEVAL_INSTRUCT = PromptFormat(
    template="Write a solution to the following problem and make sure that it passes the tests:\n```python\n{{ prompt }}\n```",
    chat=True,
    assistant_prefix="Here is the completed function:\n```python\n{{ prompt }}",
)


def _humaneval_task(samples: int, temperature: float, k: tuple[int, ...], instruct: bool) -> Callable[[], Task]:
    def build() -> Task:
        name = ("humaneval_instruct" if instruct else "humaneval") + (f"_n{samples}" if samples > 1 else "")
        how = "chat turn, reply prefixed with the prompt" if instruct else "raw completion"
        return Task(
            name,
            builtin.humaneval,
            HUMANEVAL_INSTRUCT if instruct else PromptFormat(template="{{ prompt }}"),
            Generate(
                max_tokens=256,
                stop=HUMANEVAL_STOP,
                temperature=temperature,
                top_p=0.95 if temperature else 1.0,
                samples=samples,
            ),
            CodeScorer(k=k),
            f"HumanEval (164), {how}, {samples} sample(s) at T={temperature}, tests in the sandbox",
            primary_metric="pass@1",
        )

    return build


GENERAL_SCORERS: dict[str, Callable[..., Scorer]] = {
    "choice": ChoiceScorer,
    "match": MatchScorer,
    "verifier": VerifierScorer,
    "code": CodeScorer,
    "self_consistency": SelfConsistencyScorer,
}

BUILTIN_TASKS: dict[str, Callable[[], Task]] = {
    "mmlu": _mmlu,
    "hellaswag": _hellaswag_task,
    "truthfulqa_mc1": _truthfulqa_task,
    "gsm8k": _gsm8k_task,
    "gsm8k_sc": _gsm8k_sc_task,
    "humaneval": _humaneval_task(1, 0.0, (1,), instruct=False),
    "humaneval_n10": _humaneval_task(10, 0.8, (1, 10), instruct=False),
    "humaneval_instruct": _humaneval_task(1, 0.0, (1,), instruct=True),
    "humaneval_instruct_n10": _humaneval_task(10, 0.8, (1, 10), instruct=True),
}


def register_benchmarks(registry: TaskRegistry) -> None:
    """The offline benchmarks, and the scorers any YAML task may name."""
    for name, build in BUILTIN_TASKS.items():
        registry.add_task(name, build, source="llmkit.eval.tasks.builtin")
    for name, scorer_type in GENERAL_SCORERS.items():
        registry.add_scorer(name, scorer_type, source="llmkit.eval.tasks.builtin")
