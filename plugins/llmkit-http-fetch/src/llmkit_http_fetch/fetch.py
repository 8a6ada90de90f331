"""`HttpFetchToolbox`: GET a page from an allow-listed host and return its text."""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message

from llmkit.orchestrate import Toolbox, ToolError, tool

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclasses.dataclass(frozen=True)
class AllowList:
    """Hosts that may be fetched: `example.org` (default ports), `example.org:8080`, `*.example.org`."""

    entries: tuple[tuple[str, int | None], ...]

    @classmethod
    def parse(cls, text: str) -> AllowList:
        entries = []
        for raw in text.split(","):
            item = raw.strip().lower()
            if not item:
                continue
            host, sep, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
            if not sep:
                host, port = item, ""
            if not host or "/" in host or (port and not port.isdigit()):
                raise ToolError(f"allow-list entry {raw.strip()!r} must be HOST, HOST:PORT or *.DOMAIN")
            entries.append((host, int(port) if port else None))
        return cls(tuple(entries))

    def permits(self, host: str, port: int, scheme: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern, allowed_port in self.entries:
            if allowed_port is None and port != DEFAULT_PORTS[scheme]:
                continue
            if allowed_port is not None and port != allowed_port:
                continue
            if pattern.startswith("*.") and host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
            if host == pattern:
                return True
        return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects come back as responses; the toolbox checks each target against the allow-list."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class HttpFetchToolbox(Toolbox):
    """Fetch pages over HTTP(S) GET from the hosts in `allow` (comma-separated; empty: nothing is allowed)."""

    def __init__(self, allow: str = "", timeout_s: float = 10.0, max_bytes: int = 100_000, max_redirects: int = 3):
        self.allow = AllowList.parse(allow)
        self.timeout_s, self.max_bytes, self.max_redirects = timeout_s, max_bytes, max_redirects
        # No proxies from the environment: the allow-list names the hosts actually contacted.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())

    def _check(self, url: str) -> str:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in DEFAULT_PORTS:
            raise ToolError(f"refused: only http and https URLs can be fetched, not {parts.scheme or 'no scheme'!r}")
        if parts.username or parts.password:
            raise ToolError("refused: URLs with credentials are not fetched")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ToolError(f"refused: {url!r} has an invalid port") from None
        host = parts.hostname or ""
        if not self.allow.entries:
            raise ToolError("refused: http_fetch is off: no host is allowed (set the toolbox option allow=HOST,...)")
        if not self.allow.permits(host, port, parts.scheme):
            raise ToolError(f"refused: {host}:{port} is not on the allow-list")
        return urllib.parse.urlunsplit(parts)

    @tool(permission="requires_approval")
    def http_fetch(self, url: str) -> str:
        """Fetch a web page with an HTTP GET and return its text. Only allow-listed hosts can be fetched.

        Args:
            url: the page's full URL, e.g. "https://example.org/notes.txt".
        """
        current = self._check(url)
        for _ in range(self.max_redirects + 1):
            request = urllib.request.Request(current, method="GET", headers={"User-Agent": "llmkit-http-fetch"})
            try:
                response = self._opener.open(request, timeout=self.timeout_s)
            except urllib.error.HTTPError as err:
                if err.code in (301, 302, 303, 307, 308) and err.headers.get("Location"):
                    current = self._check(urllib.parse.urljoin(current, err.headers["Location"]))
                    continue
                raise ToolError(f"HTTP {err.code} {err.reason} from {current}") from None
            except (urllib.error.URLError, TimeoutError, OSError) as err:
                reason = getattr(err, "reason", err)
                raise ToolError(f"could not fetch {current}: {reason}") from None
            with response:
                return self._text(current, response.headers, response.read(self.max_bytes + 1))
        raise ToolError(f"more than {self.max_redirects} redirects from {url}")

    def _text(self, url: str, headers: Message, body: bytes) -> str:
        kind = headers.get_content_type()
        if not kind.startswith(TEXT_TYPES):
            return f"{url}: {kind} content of {len(body)} bytes (not text; not shown)"
        text = body[: self.max_bytes].decode(headers.get_content_charset() or "utf-8", errors="replace")
        if len(body) > self.max_bytes:
            text += f"\n[... cut at {self.max_bytes} bytes]"
        return text
