"""Disaggregated serving: prefill workers compute prompts, decode workers generate, a router joins
them; finished KV blocks move prefill -> decode over a torch.distributed process group."""
