"""Tokenizers (the `tokenizers` library) from tokenizer.json or GGUF metadata, and streaming detokenization."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, decoders, pre_tokenizers, processors
from tokenizers import Tokenizer as HFTokenizer
from tokenizers.models import BPE

from .errors import ModelFormatError

# GGUF token types (llama.cpp's llama_token_type).
_CONTROL, _USER_DEFINED = 3, 4

_LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_level(use_regex: bool) -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)


def _split_then_bytes(pattern: str) -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False), _byte_level(False)]
    )


# llama.cpp's `tokenizer.ggml.pre` names -> the equivalent HF pre-tokenizer.
GGUF_PRE_TOKENIZERS = {
    "default": lambda: _byte_level(True),
    "gpt-2": lambda: _byte_level(True),
    "gpt2": lambda: _byte_level(True),
    "smollm": lambda: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), _byte_level(True)]),
    "llama-bpe": lambda: _split_then_bytes(_LLAMA3_SPLIT),
    "llama3": lambda: _split_then_bytes(_LLAMA3_SPLIT),
    "qwen2": lambda: _split_then_bytes(_QWEN2_SPLIT),
}


@dataclasses.dataclass
class Tokenizer:
    """A `tokenizers.Tokenizer` plus the special-token facts generation needs."""

    backend: HFTokenizer
    bos_token_id: int | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None = None

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def bos_token(self) -> str:
        return "" if self.bos_token_id is None else self.id_to_token(self.bos_token_id)

    @property
    def eos_token(self) -> str:
        return self.id_to_token(self.eos_token_ids[0]) if self.eos_token_ids else ""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`. Chat-template output already holds its special tokens, hence the default."""
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: list[str], add_special_tokens: bool = False) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def id_to_token(self, token_id: int) -> str:
        token = self.backend.id_to_token(token_id)
        if token is None:
            raise ValueError(f"token id {token_id} is outside the vocabulary (size {self.vocab_size})")
        return token

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def pieces(self, text: str) -> list[tuple[int, str, str]]:
        """(id, vocabulary token, the text it stands for) for each token of `text`."""
        encoding = self.backend.encode(text, add_special_tokens=False)
        return [
            (token_id, token, text[start:end])
            for token_id, token, (start, end) in zip(encoding.ids, encoding.tokens, encoding.offsets, strict=True)
        ]

    def detokenizer(self, skip_special_tokens: bool = True) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(self, skip_special_tokens)

    @classmethod
    def from_file(cls, path: str | Path, config: dict[str, Any] | None = None) -> Tokenizer:
        """Load tokenizer.json; `config` is tokenizer_config.json (special-token names)."""
        try:
            backend = HFTokenizer.from_file(str(path))
        except Exception as err:
            raise ModelFormatError(f"cannot read tokenizer {path}: {err}") from None
        config = config or {}

        def special_id(key: str) -> int | None:
            token = config.get(key)
            if isinstance(token, dict):
                token = token.get("content")
            return None if token is None else backend.token_to_id(token)

        eos = special_id("eos_token")
        pad = special_id("pad_token")
        return cls(backend, special_id("bos_token"), () if eos is None else (eos,), pad)

    @classmethod
    def from_gguf_fields(cls, fields: dict[str, Any]) -> Tokenizer:
        """Build the byte-level BPE tokenizer that GGUF metadata describes (llama.cpp's `gpt2` model)."""
        model = fields.get("tokenizer.ggml.model")
        if model != "gpt2":
            raise ModelFormatError(
                f"GGUF tokenizer model {model!r} is not supported (llmkit reads byte-level BPE, 'gpt2'); "
                "use an HF-layout checkpoint with tokenizer.json instead"
            )
        pre = fields.get("tokenizer.ggml.pre", "default")
        if pre not in GGUF_PRE_TOKENIZERS:
            raise ModelFormatError(
                f"GGUF pre-tokenizer {pre!r} is not supported; known: {', '.join(sorted(GGUF_PRE_TOKENIZERS))}"
            )
        try:
            tokens: list[str] = fields["tokenizer.ggml.tokens"]
            merges: list[str] = fields["tokenizer.ggml.merges"]
        except KeyError as missing:
            raise ModelFormatError(f"GGUF metadata lacks {missing.args[0]!r}") from None
        types: list[int] = fields.get("tokenizer.ggml.token_type") or [1] * len(tokens)
        vocab = {token: i for i, token in enumerate(tokens)}
        pairs = [tuple(m.split(" ", 1)) for m in merges]
        backend = HFTokenizer(BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
        backend.pre_tokenizer = GGUF_PRE_TOKENIZERS[pre]()
        backend.decoder = decoders.ByteLevel()
        backend.add_special_tokens(
            [AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == _CONTROL]
        )
        backend.add_tokens(
            [AddedToken(tokens[i], special=False, normalized=False) for i, t in enumerate(types) if t == _USER_DEFINED]
        )
        bos = fields.get("tokenizer.ggml.bos_token_id")
        eos = fields.get("tokenizer.ggml.eos_token_id")
        eot = fields.get("tokenizer.ggml.eot_token_id")
        if fields.get("tokenizer.ggml.add_bos_token", False) and bos is not None:
            bos_token = tokens[bos]
            backend.post_processor = processors.TemplateProcessing(
                single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B", special_tokens=[(bos_token, bos)]
            )
        else:
            backend.post_processor = processors.ByteLevel(trim_offsets=False)
        eos_ids = tuple(dict.fromkeys(i for i in (eos, eot) if i is not None))
        return cls(backend, bos, eos_ids, fields.get("tokenizer.ggml.padding_token_id"))


class IncrementalDetokenizer:
    """Turns a stream of token ids into text deltas that never split a UTF-8 character."""

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True):
        self._tokenizer = tokenizer.backend
        self._stream = decoders.DecodeStream(skip_special_tokens=skip_special_tokens)

    def push(self, token_id: int) -> str:
        """Text completed by this token ('' while a multi-byte character is still incomplete)."""
        return self._stream.step(self._tokenizer, token_id) or ""
