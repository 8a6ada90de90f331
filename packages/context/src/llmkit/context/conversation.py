"""A conversation driven through a `ContextWindow`: render, ask the backend, record, compress, log."""

from __future__ import annotations

from llmkit.core.backends import Backend, ChatResult
from llmkit.core.sampling import SamplingParams

from .compression.summarize import RollingSummary
from .diagnostics.log import ContextLog
from .render import RenderedContext
from .window import ContextWindow


class Conversation:
    """Each `send` renders the window with the user's message, chats, then appends the exchange to the history.

    The retrieved/state/reminder injections live only in the call they were made for; the history
    keeps the user's plain message, so the next call's prefix matches this one's.
    """

    def __init__(
        self,
        backend: Backend,
        window: ContextWindow | None = None,
        *,
        summarizer: RollingSummary | None = None,
        log: ContextLog | None = None,
        params: SamplingParams | None = None,
    ):
        self.backend = backend
        self.window = window or ContextWindow(backend)
        self.summarizer, self.log = summarizer, log
        self.params = params or SamplingParams(temperature=0.0, max_tokens=256)
        self.last: RenderedContext | None = None

    def send(self, user_message: str, params: SamplingParams | None = None) -> ChatResult:
        if self.summarizer is not None:
            self.summarizer.maybe_fold(self.window)
        rendered = self.window.render(user_message)
        self.last = rendered
        if self.log is not None:
            self.log.record(rendered, label=f"turn {self.window.turn + 1}")
        result = self.backend.chat([rendered.messages], params or self.params, tools=rendered.tools)[0]
        self.window.add_message("user", user_message)
        self.window.add_message("assistant", result.choices[0].message.content or result.choices[0].text)
        return result
