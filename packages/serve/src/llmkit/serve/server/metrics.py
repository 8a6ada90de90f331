"""Prometheus metrics: latency histograms per request, engine gauges read at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..engine import Engine
from ..outputs import RequestTiming

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
_TOKEN_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2)


class _EngineCollector:
    """Gauges read from the engine when Prometheus scrapes (plain integer reads; no locking needed)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self):
        stats = self.engine.stats()
        for name, doc, value in (
            ("llmkit_requests_running", "Sequences being computed", stats.running),
            ("llmkit_requests_waiting", "Sequences waiting for admission", stats.waiting),
            ("llmkit_kv_cache_usage_ratio", "Fraction of KV blocks in use", stats.kv_usage),
            (
                "llmkit_prefix_cache_hit_ratio",
                "Cached blocks reused / shareable blocks queried",
                stats.prefix_cache_hit_rate,
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        yield CounterMetricFamily("llmkit_preemptions", "Sequences preempted by recompute", value=stats.preemptions)
        if stats.speculative_method is not None:
            labels = ["proposer"]
            for name, doc, value in (
                ("llmkit_draft_tokens_proposed", "Draft tokens proposed", stats.draft_tokens_proposed),
                ("llmkit_draft_tokens_accepted", "Draft tokens accepted", stats.draft_tokens_accepted),
                ("llmkit_speculative_proposals", "Verified proposals", stats.speculative_proposals),
            ):
                family = CounterMetricFamily(name, doc, labels=labels)
                family.add_metric([stats.speculative_method], value)
                yield family
            for name, doc, value in (
                ("llmkit_draft_acceptance_ratio", "Accepted / proposed draft tokens", stats.draft_acceptance_rate),
                ("llmkit_mean_accepted_length", "Accepted draft tokens per proposal", stats.mean_accepted_length),
            ):
                family = GaugeMetricFamily(name, doc, labels=labels)
                family.add_metric([stats.speculative_method], value)
                yield family
        yield CounterMetricFamily(
            "llmkit_prefix_cache_queried_blocks", "Shareable blocks looked up", value=stats.prefix_cache_queried_blocks
        )
        yield CounterMetricFamily(
            "llmkit_prefix_cache_hit_blocks", "Blocks served from the prefix cache", value=stats.prefix_cache_hit_blocks
        )


class ServerMetrics:
    def __init__(self, engine: Engine):
        self.registry = CollectorRegistry()
        self.ttft = Histogram(
            "llmkit_time_to_first_token_seconds",
            "Arrival to first token",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inter_token = Histogram(
            "llmkit_inter_token_latency_seconds",
            "Mean time per output token after the first",
            buckets=_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "llmkit_request_latency_seconds", "Arrival to last token", buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.registry.register(_EngineCollector(engine))

    def observe(self, timing: RequestTiming) -> None:
        if timing.time_to_first_token is not None:
            self.ttft.observe(timing.time_to_first_token)
        if timing.time_per_output_token is not None:
            self.inter_token.observe(timing.time_per_output_token)
        if timing.finished is not None:
            self.latency.observe(timing.finished - timing.arrival)

    def render(self) -> bytes:
        return generate_latest(self.registry)
