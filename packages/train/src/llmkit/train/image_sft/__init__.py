"""Image SFT: chat records with image parts, trained into a SmolVLM / Idefics3 or LLaVA model by `llmkit train sft`.

Modules: `records` (the JSONL format), `encoding` (ids, image tokens, loss mask), `model` (load, forward, save),
`method` (`ImageSFTMethod`). Nothing is imported here: `runtime` imports `model`, and `method` imports `runtime`."""
