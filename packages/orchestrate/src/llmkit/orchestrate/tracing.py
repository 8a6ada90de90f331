"""Tracing: every run, step, model call and tool call is a span, written as a JSON line when it ends;
spans also go to OpenTelemetry when it is installed (`pip install llmkit-orchestrate[otel]`)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol


@dataclasses.dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start: float
    end: float | None = None
    status: str = "ok"
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)

    def set(self, **attributes: Any) -> None:
        self.attributes.update(attributes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SpanExporter(Protocol):
    def on_start(self, span: Span) -> None: ...

    def on_end(self, span: Span) -> None: ...


def _otel_value(value: Any) -> Any:
    return value if isinstance(value, str | bool | int | float) else json.dumps(value, default=str)


class OpenTelemetryExporter:
    """Mirrors each span into OpenTelemetry (same name, times, parent, attributes)."""

    def __init__(self, tracer_provider: Any = None):
        from opentelemetry import trace

        self._trace = trace
        self._tracer = trace.get_tracer("llmkit.orchestrate", tracer_provider=tracer_provider)
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Span) -> None:
        with self._lock:
            parent = self._open.get(span.parent_id) if span.parent_id else None
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        otel = self._tracer.start_span(span.name, context=context, start_time=int(span.start * 1e9))
        with self._lock:
            self._open[span.span_id] = otel

    def on_end(self, span: Span) -> None:
        with self._lock:
            otel = self._open.pop(span.span_id, None)
        if otel is None:
            return
        otel.set_attributes({f"llmkit.{k}": _otel_value(v) for k, v in span.attributes.items() if v is not None})
        if span.status != "ok":
            otel.set_status(self._trace.Status(self._trace.StatusCode.ERROR, span.status))
        otel.end(end_time=int((span.end or time.time()) * 1e9))


def opentelemetry_installed() -> bool:
    return importlib.util.find_spec("opentelemetry") is not None and bool(
        importlib.util.find_spec("opentelemetry.trace")
    )


class Tracer:
    """Writes finished spans to `path` (JSONL, appended) and to `exporters`. `opentelemetry`: True to
    require the OpenTelemetry exporter, False to skip it, None to use it when the package is installed."""

    def __init__(
        self,
        path: str | Path | None = None,
        exporters: Sequence[SpanExporter] = (),
        opentelemetry: bool | None = None,
    ):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.exporters = list(exporters)
        if opentelemetry or (opentelemetry is None and opentelemetry_installed()):
            self.exporters.append(OpenTelemetryExporter())
        self.trace_id = uuid.uuid4().hex
        self.finished: list[Span] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def span(self, name: str, parent: Span | None = None, **attributes: Any) -> Iterator[Span]:
        span = Span(name, self.trace_id, uuid.uuid4().hex[:16], parent.span_id if parent else None, time.time())
        span.set(**attributes)
        for exporter in self.exporters:
            exporter.on_start(span)
        try:
            yield span
        except BaseException as err:
            span.status = f"error: {type(err).__name__}: {err}"[:300]
            raise
        finally:
            span.end = time.time()
            self._finish(span)

    def _finish(self, span: Span) -> None:
        with self._lock:
            self.finished.append(span)
            if self.path:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(span.to_dict(), ensure_ascii=False, default=str) + "\n")
        for exporter in self.exporters:
            exporter.on_end(span)


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """The spans of a JSONL trace file, in the order they ended."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
