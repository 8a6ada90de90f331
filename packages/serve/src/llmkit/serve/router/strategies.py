"""How `ReplicaPolicy` picks a replica (named here so the CLI can list them without importing httpx)."""

STRATEGIES = ("cache-aware", "least-loaded", "round-robin")
