"""HF-layout checkpoints: config.json + safetensors (single file or sharded index) + tokenizer.json."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from ..errors import ModelFormatError
from ..tokenizer import Tokenizer
from .checkpoint import Checkpoint, expected_tensor_names
from .config import ModelConfig

# Tensors an HF checkpoint may carry that the forward pass does not use.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


class HFLoader:
    """Loads a directory holding config.json, *.safetensors and tokenizer.json."""

    def can_load(self, path: Path) -> bool:
        return path.is_dir() and (path / "config.json").is_file()

    def load(self, path: Path, *, keep_stored: bool = False) -> Checkpoint:
        """float32 tensors, or with `keep_stored` the matrices in their stored dtype (bf16/fp16/fp32)."""
        config = ModelConfig.from_hf_dict(_read_json(path / "config.json"))
        tensors = {}
        for file in _weight_files(path):
            try:
                with safe_open(file, framework="pt") as f:
                    for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                        name = key.removeprefix("model.")
                        if name.endswith(_IGNORED_SUFFIXES):
                            continue
                        if name == "lm_head.weight" and config.tie_word_embeddings:
                            continue
                        tensor = f.get_tensor(key)
                        tensors[name] = tensor if keep_stored and tensor.dim() == 2 else tensor.float()
            except ModelFormatError:
                raise
            except Exception as err:
                raise ModelFormatError(f"cannot read {file}: {err}") from None
        expected = expected_tensor_names(config)
        missing = [n for n in expected if n not in tensors]
        if missing:
            raise ModelFormatError(
                f"{path} lacks the tensor {missing[0]!r}"
                + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            )
        unexpected = sorted(set(tensors) - set(expected))
        if unexpected:
            raise ModelFormatError(
                f"{path} holds tensors the {config.architecture} architecture does not use: {unexpected[:3]}"
            )
        if not (path / "tokenizer.json").is_file():
            raise ModelFormatError(f"{path} lacks tokenizer.json")
        tokenizer_config = (
            _read_json(path / "tokenizer_config.json") if (path / "tokenizer_config.json").is_file() else {}
        )
        tokenizer = Tokenizer.from_file(path / "tokenizer.json", tokenizer_config)
        tokenizer = _with_generation_eos(tokenizer, path)
        return Checkpoint(
            config=config,
            tensors=tensors,
            tokenizer=tokenizer,
            chat_template=_chat_template(path, tokenizer_config),
            path=path,
            format="hf",
        )


def _read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelFormatError(f"cannot read {file}: {err}") from None


def _weight_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index)["weight_map"].values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise ModelFormatError(f"{path} lacks the shard {missing[0]} named in its index")
        return [path / s for s in shards]
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelFormatError(f"{path} holds no .safetensors weights (llmkit reads safetensors only)")
    return files


def _chat_template(path: Path, tokenizer_config: dict) -> str | None:
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: take the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template


def _with_generation_eos(tokenizer: Tokenizer, path: Path) -> Tokenizer:
    """generation_config.json may name several end-of-sequence ids (e.g. Llama 3's <|eot_id|>)."""
    file = path / "generation_config.json"
    if not file.is_file():
        return tokenizer
    eos = _read_json(file).get("eos_token_id")
    if eos is None:
        return tokenizer
    ids = eos if isinstance(eos, list) else [eos]
    tokenizer.eos_token_ids = tuple(dict.fromkeys([*tokenizer.eos_token_ids, *ids]))
    return tokenizer
