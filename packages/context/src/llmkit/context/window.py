"""`ContextWindow`: the context as a document authored per call, in zones with budgets and priorities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmkit.core.backends import Backend
from llmkit.core.tokenizer import Tokenizer

from .compression.base import HistoryPolicy, HistoryView
from .compression.corrections import Correction, apply_corrections_to_text
from .constraints import STATE_KEY, ConstraintDetector, RuleDetector, StatedConstraint, detect_all, promote, read_record
from .constraints.promotion import supersede_by_claim
from .errors import ContextError
from .fitting import Unit, fit_total, fit_zones
from .image_items import IMAGE_KINDS, image_message, image_tokens
from .items import ContextItem, RetrievedChunk
from .placement import u_shaped_order
from .render import (
    RenderedContext,
    content_hash,
    history_message,
    render_document,
    render_documents,
    render_reminders,
    render_retrieved,
    render_state,
    render_tools_text,
)
from .state import StateObject
from .summary import TurnSummary, render_summary
from .tokens import TokenCounter, counter_from
from .zones import ZoneSpec, default_zones


class ContextWindow:
    """Zones (system, tools, documents, history, retrieved, state, current, reminders) rendered to messages.

    The static prefix (system, tools, documents) renders byte-identically while unchanged, and the
    history is append-only between summarizations; everything that changes per call goes last.
    """

    def __init__(
        self,
        counter: Backend | TokenCounter | Tokenizer,
        *,
        budget: int | None = None,
        reserve_output: int = 256,
        zones: Mapping[str, ZoneSpec | int] | None = None,
        policies: Sequence[HistoryPolicy] = (),
        tools_in_template: bool | None = None,
        constraint_detectors: Sequence[ConstraintDetector] | None = None,
    ):
        self.counter = counter_from(counter)
        if budget is None:
            if self.counter.context_length is None:
                raise ContextError("give a token budget: this counter does not know the model's context length")
            budget = self.counter.context_length - reserve_output
        if budget <= 0:
            raise ContextError(f"the token budget must be positive, got {budget}")
        self.budget = budget
        self.zones = default_zones(budget, **dict(zones or {}))
        self.policies = list(policies)
        # Constraints the user states in conversation are promoted into the anchored constraints
        # (rules by default; add an LMConstraintExtractor, or pass () to turn detection off).
        self.constraint_detectors = list((RuleDetector(),) if constraint_detectors is None else constraint_detectors)
        template = self.counter.chat_template
        self.tools_in_template = (
            tools_in_template if tools_in_template is not None else bool(template and template.supports_tools)
        )
        self.system = ""
        self.tools: list[dict[str, Any]] = []
        self.documents: list[ContextItem] = []
        self.history: list[ContextItem] = []
        self.images: dict[str, Any] = {}  # item_id -> the pixels of an image or page item (see image_items)
        self.retrieved: list[RetrievedChunk] = []
        self.state = StateObject()
        self.objective: str | None = None
        self.constraints: list[str] = []
        self.reminders: list[str] = []
        self.corrections: list[Correction] = []
        self.summary: TurnSummary | None = None
        self.summarized_through = 0  # turns 1..summarized_through live only in `summary`
        self.turn = 0

    # -- authoring -------------------------------------------------------------------------

    def add_document(self, text: str, source: str, *, trusted: bool = False, priority: int = 0) -> ContextItem:
        """A long document for the static prefix (kept byte-identical across calls)."""
        item = ContextItem(text, kind="document", role="system", source=source, trusted=trusted, priority=priority)
        self.documents.append(item)
        return item

    def add_message(self, role: str, content: str, **fields: Any) -> ContextItem:
        """Append to the history; a user message opens a new turn.

        A user's own message is run through the constraint detectors first: what it states is promoted
        into the anchored constraints (`stated_constraints`); if a detector fails the window is unchanged.
        """
        item = ContextItem(content, role=role, turn=max(self.turn + (role == "user"), 1), **fields)
        detections = []
        if role == "user" and item.kind == "message" and item.trusted and self.constraint_detectors:
            active = [r.text for r in self.stated_constraints if r.active]
            detections = detect_all(self.constraint_detectors, content, active)
        self._append(item)
        if detections:
            promote(self.state, self.corrections, item, detections)
        return item

    def _append(self, item: ContextItem) -> ContextItem:
        if item.role == "user":
            self.turn += 1
        self.history.append(item)
        return item

    @property
    def stated_constraints(self) -> list[StatedConstraint]:
        """Every constraint and preference promoted from the conversation, superseded ones included."""
        return read_record(self.state)

    def anchored_constraints(self) -> list[str]:
        """What holds now: the window's own constraints, then the active stated ones in the user's words."""
        return [*self.constraints, *(r.text for r in self.stated_constraints if r.active)]

    def add_tool_result(self, name: str, content: str, *, summary: str | None = None) -> ContextItem:
        """A tool's output: untrusted, labeled with the tool's name; `summary` is its one-line form later."""
        metadata = {"name": name, **({"summary": summary} if summary else {})}
        return self.add_message("tool", content, kind="tool_result", trusted=False, source=name, metadata=metadata)

    def set_retrieved(self, chunks: Sequence[RetrievedChunk]) -> None:
        """This call's retrieved chunks, best first; rendered U-shaped (best at the edges)."""
        self.retrieved = list(chunks)

    def correct(self, claim: str, correction: str, role: str = "user") -> ContextItem:
        """Record that `claim` (as said earlier) is wrong; earlier mentions render with a correction marker."""
        if not claim.strip():
            raise ContextError("a correction needs the claim it supersedes")
        text = f"Correction: {correction} (this replaces the earlier claim: {claim!r})"
        item = self._append(ContextItem(text, kind="correction", role=role, pinned=True, turn=max(self.turn, 1)))
        if role == "user":
            item.turn = self.turn
        self.corrections.append(Correction(claim, correction, item.turn, item.item_id))
        supersede_by_claim(self.state, claim, correction, item.turn)
        return item

    def abandon(self, first_turn: int, last_turn: int | None = None, reason: str = "abandoned") -> None:
        """Mark turns first..last (default: to now) as an abandoned approach, for `SelectiveEviction`."""
        last = self.turn if last_turn is None else last_turn
        for item in self.history:
            if first_turn <= item.turn <= last and not item.pinned:
                item.metadata["abandoned"] = reason

    # -- rendering -------------------------------------------------------------------------

    def history_view(self) -> HistoryView:
        """The live history (turns not yet folded into the summary) after every policy ran."""
        from .compression.corrections import apply_corrections

        view = HistoryView.of([i for i in self.history if i.turn > self.summarized_through], self.turn)
        apply_corrections(view, self.corrections)
        for policy in self.policies:
            policy.apply(view)
        active = {r.item_id: r for r in self.stated_constraints if r.active}
        for item in view.live():
            if item.item_id in active:
                record = active[item.item_id]
                reason = f"states a constraint the user set at turn {record.turn}: cut last for budget"
                view.protect(item, "stated_constraints", 2, record.text, reason)
        return view

    def _summary_text(self) -> str:
        """The rolling summary, with corrected claims struck through as in the history."""
        return apply_corrections_to_text(render_summary(self.summary, self.summarized_through), self.corrections)

    def _unit(
        self,
        zone: str,
        text: str,
        keep_rank: float,
        description: str,
        payload: Any,
        pinned: bool = False,
        protection: tuple[int, str | None] = (0, None),
    ):
        own_message = zone == "history"
        count = self.counter.count(text) + (image_tokens(payload) if isinstance(payload, ContextItem) else 0)
        return Unit(zone, count, keep_rank, description, payload, pinned, True, text, own_message, *protection)

    def _units(self, current: str | None, view: HistoryView) -> list[Unit]:
        units = [self._unit("system", self.system, 0, "system prompt", None, pinned=True)]
        if self.tools:
            units.append(self._unit("tools", render_tools_text(self.tools), 0, f"{len(self.tools)} tools", None, True))
        for index, doc in enumerate(self.documents):
            rank = doc.priority * 10_000 - index  # later documents are cut first among equals
            units.append(self._unit("documents", render_document(doc), rank, f"document {doc.source}", doc))
        if self.summary is not None:
            text = self._summary_text()
            units.append(self._unit("history", text, float("inf"), "summary of earlier turns", "summary"))
        for index, item in enumerate(view.live()):
            rank = item.priority * 10_000 + index  # oldest first among equals
            message = history_message(item, view.text(item) or "")
            protection = view.protected.get(item.item_id, (0, None))
            units.append(
                self._unit(
                    "history", message["content"], rank, f"turn {item.turn} {item.role}", item, item.pinned, protection
                )
            )
        for rank, chunk in enumerate(self.retrieved):
            units.append(self._unit("retrieved", chunk.text, -rank, f"chunk {rank + 1} {chunk.source}", (rank, chunk)))
        state_text = render_state(self.state.render(exclude=(STATE_KEY,)))
        if state_text:
            units.append(self._unit("state", state_text, 0, "state object", None))
        if current is not None:
            units.append(self._unit("current", current, 0, "current turn", None, pinned=True))
        anchor = render_reminders(self.objective, self.constraints, ())
        if anchor:
            units.append(self._unit("reminders", anchor, float("inf"), "objective and constraints", None, True))
        for index, record in enumerate(r for r in self.stated_constraints if r.active):
            description = f"constraint stated at turn {record.turn}"
            units.append(
                self._unit(
                    "reminders", f"- {record.anchor_line()}", index, description, record, False, (2, record.text)
                )
            )
        for index, reminder in enumerate(self.reminders):
            units.append(self._unit("reminders", reminder, index, "reminder", reminder))
        return units

    def _assemble(
        self, units: list[Unit], current: str | None, view: HistoryView
    ) -> tuple[list, list | None, int, list[ContextItem]]:
        kept = [u for u in units if u.kept]
        system_parts = [self.system] if self.system else []
        tools = None
        if self.tools and self.tools_in_template:
            tools = list(self.tools)
        elif self.tools:
            system_parts.append(render_tools_text(self.tools))
        documents = [u.payload for u in kept if u.zone == "documents"]
        if documents:
            system_parts.append(render_documents(documents))
        messages: list[dict[str, Any]] = []
        if system_parts:
            messages.append({"role": "system", "content": "\n\n".join(system_parts)})
        static_messages = len(messages)
        if any(u.payload == "summary" for u in kept):
            messages.append({"role": "system", "content": self._summary_text()})
        kept_history = {id(u.payload) for u in kept if u.zone == "history"}
        kept_items = [i for i in view.live() if id(i) in kept_history]
        messages += [
            image_message(i, view.text(i) or "") if i.kind in IMAGE_KINDS else history_message(i, view.text(i) or "")
            for i in kept_items
        ]
        images = [i for i in kept_items if i.kind in IMAGE_KINDS]
        stated = [u.payload.anchor_line() for u in kept if isinstance(u.payload, StatedConstraint)]
        ranked = [u.payload for u in kept if u.zone == "retrieved"]
        placed = [ranked[i] for i in u_shaped_order(len(ranked))]
        tail = [
            render_retrieved([chunk for _, chunk in placed], [rank for rank, _ in placed]),
            render_state(self.state.render(exclude=(STATE_KEY,))) if any(u.zone == "state" for u in kept) else "",
            current or "",
            render_reminders(
                self.objective,
                [*self.constraints, *stated],
                [u.payload for u in kept if u.zone == "reminders" and isinstance(u.payload, str)],
            ),
        ]
        tail_text = "\n\n".join(part for part in tail if part)
        if tail_text:
            messages.append({"role": "user", "content": tail_text})
        return messages, tools, static_messages, images

    def render(self, current: str | None = None) -> RenderedContext:
        """This call's messages, every zone and the total within budget (content is cut, never overflowed)."""
        view = self.history_view()
        units = self._units(current, view)
        dropped: list = []
        fit_zones(units, self.zones, dropped)
        assembled: dict[str, Any] = {}

        def measure() -> int:
            messages, tools, static, images = self._assemble(units, current, view)
            assembled.update(messages=messages, tools=tools, static=static, images=images)
            return self.counter.count_messages(messages, tools, [image_tokens(i) for i in images])

        total = fit_total(units, self.zones, self.budget, measure, dropped)
        messages, tools, static = assembled["messages"], assembled["tools"], assembled["static"]
        zone_tokens = {name: sum(u.tokens for u in units if u.zone == name and u.kept) for name in self.zones}
        zone_tokens["overhead"] = total - sum(zone_tokens.values())
        zone_hashes = {name: content_hash([u.text for u in units if u.zone == name and u.kept]) for name in self.zones}
        return RenderedContext(
            messages=messages,
            tools=tools,
            prefix_hash=content_hash({"messages": messages[:static], "tools": tools}),
            static_messages=static,
            zone_tokens=zone_tokens,
            zone_hashes=zone_hashes,
            total_tokens=total,
            budget=self.budget,
            dropped=dropped,
            decisions=view.decisions,
            images=[self.images.get(i.item_id) for i in assembled["images"]],
        )
