"""One router in front of llmkit servers: replicas (prefix affinity + least outstanding requests) or a
prefill/decode pair (disaggregated serving), as two policies of the same component."""
