"""The third-party-style tool plugin `llmkit-http-fetch`, installed from its own pyproject (nox session
`http_fetch`); skipped where it is not installed. A local HTTP server stands in for the web."""

from __future__ import annotations

import http.server
import threading

import pytest

pytest.importorskip("llmkit_http_fetch")

from llmkit.orchestrate import ReActAgent, ToolError, ToolPolicy, build_tool_set
from llmkit.orchestrate.testing import ScriptedBackend, hermes_call
from llmkit.orchestrate.tools import describe_installed


class Pages(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        port = self.server.server_address[1]
        routes = {
            "/notes.txt": (200, "text/plain; charset=utf-8", b"the meeting is at 10:00"),
            "/big.txt": (200, "text/plain", b"x" * 5000),
            "/image.png": (200, "image/png", b"\x89PNG" + b"\x00" * 100),
            "/inside": (302, "text/plain", b"", f"http://127.0.0.1:{port}/notes.txt"),
            "/outside": (302, "text/plain", b"", f"http://localhost:{port}/notes.txt"),
        }
        status, kind, body, *location = routes.get(self.path, (404, "text/plain", b"missing"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if location:
            self.send_header("Location", location[0])
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # never used: the tool only GETs
        raise AssertionError("POST")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def fetcher(allow: str = "", **options):
    tools = build_tool_set(["http_fetch"], {"http_fetch": {"allow": allow, **options}})
    return tools, tools.get("http_fetch")


def test_registered_through_the_tool_hook():
    (row,) = [r for r in describe_installed() if r["name"] == "http_fetch"]
    assert row["owner"].startswith("llmkit-http-fetch") and row["tools"] == ["http_fetch"]


def test_off_by_default(site):
    tools, fetch = fetcher()
    assert fetch.permission == "requires_approval"
    with pytest.raises(ToolError, match="http_fetch is off: no host is allowed"):
        fetch.invoke({"url": f"http://{site}/notes.txt"})
    # and an agent with the default policy and no approver never fetches, even with an allow-list
    tools, _ = fetcher(site)
    backend = ScriptedBackend([hermes_call("http_fetch", {"url": f"http://{site}/notes.txt"}), "no"])
    result = ReActAgent(backend, tools).run("read the notes")
    assert result.tool_log[0]["status"] == "refused" and "needs approval" in result.tool_log[0]["content"]


def test_allowed_hosts_are_fetched(site):
    tools, fetch = fetcher(site, max_bytes=100)
    assert fetch.invoke({"url": f"http://{site}/notes.txt"}) == "the meeting is at 10:00"
    assert fetch.invoke({"url": f"http://{site}/inside"}) == "the meeting is at 10:00"
    assert fetch.invoke({"url": f"http://{site}/big.txt"}).endswith("[... cut at 100 bytes]")
    assert "image/png content" in fetch.invoke({"url": f"http://{site}/image.png"})
    with pytest.raises(ToolError, match="HTTP 404"):
        fetch.invoke({"url": f"http://{site}/nothing"})
    backend = ScriptedBackend([hermes_call("http_fetch", {"url": f"http://{site}/notes.txt"}), "At 10:00."])
    result = ReActAgent(backend, tools, policy=ToolPolicy(allowed={"http_fetch"})).run("When is the meeting?")
    assert result.ok and "10:00" in result.tool_log[0]["content"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost:{port}/notes.txt", "localhost:{port} is not on the allow-list"),
        ("http://127.0.0.1:1/notes.txt", "127.0.0.1:1 is not on the allow-list"),
        ("http://{site}/outside", "localhost:{port} is not on the allow-list"),  # a redirect off the list
        ("file:///etc/passwd", "only http and https"),
        ("ftp://{site}/x", "only http and https"),
        ("http://user:pw@{site}/notes.txt", "credentials"),
    ],
)
def test_everything_else_is_refused(site, url, message):
    port = site.split(":")[1]
    _, fetch = fetcher(site)
    with pytest.raises(ToolError, match=message.format(port=port, site=site)):
        fetch.invoke({"url": url.format(port=port, site=site)})


def test_bad_allow_lists_are_refused():
    with pytest.raises(ToolError, match="must be HOST, HOST:PORT"):
        fetcher("example.org:http")


def test_allow_list_patterns():
    from llmkit_http_fetch import AllowList

    allow = AllowList.parse("*.example.org, example.com, docs.example.net:8080")
    assert allow.permits("api.example.org", 443, "https") and allow.permits("a.b.example.org", 80, "http")
    assert not allow.permits("example.org", 443, "https")  # *.domain means its subdomains
    assert allow.permits("EXAMPLE.com.", 80, "http") and not allow.permits("example.com", 8443, "https")
    assert allow.permits("docs.example.net", 8080, "http") and not allow.permits("docs.example.net", 80, "http")
    assert not allow.permits("evil-example.com", 80, "http")
