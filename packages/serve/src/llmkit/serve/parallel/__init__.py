"""Tensor parallelism: one model split over N ranks (gloo on CPU, one machine); see docs/serve.md."""

from .group import TensorParallelError
from .sharding import check_shardable, shard_model, weight_bytes

__all__ = ["TensorParallelError", "check_shardable", "shard_model", "weight_bytes"]
