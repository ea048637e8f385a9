"""Per-call connection settings and TLS contexts, in every variant, against real TLS servers.

What needs more than one call or client to show, so it is not in the case table:
a per-call `cert=` is for that call only, the caller's `ssl.SSLContext` is never
changed, per-call engines are keyed by value and bounded, and one context
serves an `http2=True` client and a default-engine client alike. httpx has no
per-call `cert`/`verify` (README, "Differences from httpx"): these check cf's
documented behaviour, with raw httpx alongside where it has an equivalent.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.tls import TLSAppServer, TLSFiles, TLSInfoServer

from .harness import VARIANTS, cf_client, raw_client

pytestmark = pytest.mark.parametrize("variant", VARIANTS)


class Runner:
    """Runs a call of either mode: `run(client.get(url))` awaits it on this runner's
    loop in async variants (the loop does not run between calls, which these tests
    do not depend on), returns it as it is in sync."""

    def __init__(self, variant: str) -> None:
        self.loop = None if variant == "sync" else asyncio.new_event_loop()

    def __call__(self, result: Any) -> Any:
        return result if self.loop is None else self.loop.run_until_complete(result)

    def outcome(self, call: Callable[[], Any]) -> Any:
        """The response's JSON, or the exception's class name."""
        try:
            return self(call()).json()
        except Exception as exc:
            return type(exc).__name__

    def close(self, *clients: Any) -> None:
        for client in clients:
            self(client.aclose() if self.loop is not None else client.close())

    def end(self) -> None:
        if self.loop is not None:
            self.loop.close()


@pytest.fixture
def runner(variant: str) -> Iterator[Runner]:
    run = Runner(variant)
    yield run
    run.end()


def seen_certs(info: TLSInfoServer) -> list[tuple[str, str | None, int]]:
    """(path, client certificate's common name, connection) of each request."""
    return [(s.path, s.client_cn, s.connection) for s in info.seen()]


def context_state(context: ssl.SSLContext) -> tuple[Any, ...]:
    """What can be read back of a context (its client certificate cannot: see
    `presents`)."""
    return (
        context.get_ca_certs(),
        context.verify_mode,
        context.check_hostname,
        context.options,
        context.minimum_version,
    )


def presents(context: ssl.SSLContext, info: TLSInfoServer) -> str | None:
    """The client certificate `context` presents to a server (its common name)."""
    with httpx.Client(verify=context) as client:
        return client.get(f"{info.url}/probe").json()["client_cn"]  # type: ignore[no-any-return]


def test_per_call_cert_is_for_that_call_only(
    variant: str, runner: Runner, tls_info_server: TLSInfoServer, tls_certs: TLSFiles
) -> None:
    alice, bob = tls_certs.alice, tls_certs.bob
    client = cf_client(variant, verify=tls_certs.ca_bundle)
    url = tls_info_server.url
    try:
        runner(client.get(f"{url}/alice", cert=(alice.cert, alice.key)))
        runner(client.get(f"{url}/none"))
        runner(client.get(f"{url}/bob", cert=bob.combined))
        runner(client.get(f"{url}/none-again"))
    finally:
        runner.close(client)
    assert [(path, cn) for path, cn, _ in seen_certs(tls_info_server)] == [
        ("/alice", "alice"),
        ("/none", None),
        ("/bob", "bob"),
        ("/none-again", None),
    ]


def test_the_callers_context_is_never_changed(
    variant: str, runner: Runner, tls_info_server: TLSInfoServer, tls_certs: TLSFiles
) -> None:
    alice = tls_certs.alice
    context = tls_certs.client_context()
    before = context_state(context)
    url = tls_info_server.url
    with pytest.raises(ValueError, match="cert= cannot be combined with verify=<ssl.SSLContext>"):
        cf_client(variant, verify=context, cert=(alice.cert, alice.key))
    client = cf_client(variant, verify=context)
    try:
        assert runner.outcome(lambda: client.get(f"{url}/ctx"))["client_cn"] is None
        with pytest.raises(ValueError, match="cert= cannot be combined"):
            runner(client.get(f"{url}/refused", cert=(alice.cert, alice.key)))
        # per-call settings other than cert= reuse the context as it is
        assert runner.outcome(lambda: client.get(f"{url}/h2", http2=True))["client_cn"] is None
    finally:
        runner.close(client)
    assert [path for path, _, _ in seen_certs(tls_info_server)] == ["/ctx", "/h2"]
    assert context_state(context) == before
    assert presents(context, tls_info_server) is None
    # httpx (README, "Differences from httpx"): cert= loads the chain into your context.
    theirs = tls_certs.client_context()
    with pytest.warns(DeprecationWarning, match="cert"):
        raw_client(variant, verify=theirs, cert=(alice.cert, alice.key))
    assert presents(theirs, tls_info_server) == "alice"


def test_equal_cert_lists_share_one_engine(
    variant: str, runner: Runner, tls_info_server: TLSInfoServer, tls_certs: TLSFiles
) -> None:
    alice, bob = tls_certs.alice, tls_certs.bob
    client: Any = cf_client(variant, verify=tls_certs.ca_bundle)  # lists: not in cert's type
    url = tls_info_server.url
    try:
        for name in ("alice-1", "alice-2"):  # two equal lists: one engine, one connection
            runner(client.get(f"{url}/{name}", cert=[alice.cert, alice.key]))
        # a new list, likely at the freed list's address: still bob's certificate
        runner(client.get(f"{url}/bob", cert=[bob.cert, bob.key]))
        runner(client.get(f"{url}/alice-3", cert=[alice.cert, alice.key]))
    finally:
        runner.close(client)
    assert seen_certs(tls_info_server) == [
        ("/alice-1", "alice", 1),
        ("/alice-2", "alice", 1),
        ("/bob", "bob", 2),
        ("/alice-3", "alice", 1),
    ]
    assert tls_info_server.handshakes == 2


def established(port: int) -> int:
    """How many TCP connections to 127.0.0.1:`port` are open on the server's side."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, _, state = line.split()[1:4]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def settle(read: Callable[[], int], want: int, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while (value := read()) > want and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts connections in /proc")
def test_one_off_verify_paths_keep_at_most_eight_engines(
    variant: str,
    runner: Runner,
    tls_info_server: TLSInfoServer,
    tls_certs: TLSFiles,
    tmp_path: Path,
) -> None:
    port = int(tls_info_server.url.rsplit(":", 1)[1])
    paths = [tmp_path / f"ca-{i}.pem" for i in range(50)]
    for path in paths:
        shutil.copy(tls_certs.ca_bundle, path)
    client = cf_client(variant, verify=tls_certs.ca_bundle)
    gc.disable()  # evicted engines must be closed by cf, not by the garbage collector
    try:
        for i, path in enumerate(paths):
            runner(client.get(f"{tls_info_server.url}/{i}", verify=str(path)))
        assert len(tls_info_server.seen()) == 50 and tls_info_server.handshakes == 50
        open_now = settle(lambda: established(port), 8)
        assert 1 <= open_now <= 8, open_now
    finally:
        gc.enable()
        runner.close(client)
    assert settle(lambda: established(port), 0) == 0


def test_one_context_for_an_http2_client_and_a_default_client(
    variant: str,
    runner: Runner,
    h2_server: TLSAppServer,
    tls_server: TLSAppServer,
    tls_certs: TLSFiles,
) -> None:
    """httpcore sets ALPN on the context at each connect: a context shared with an
    `http2=True` client must not make another engine offer h2."""

    def flow(make: Callable[..., Any]) -> list[Any]:
        context = tls_certs.client_context()
        h2, default = make(variant, verify=context, http2=True), make(variant, verify=context)
        try:
            # each a new connection, made after the other client's last one
            sent = [
                (h2, h2_server.url),
                (default, h2_server.url),
                (default, tls_server.url),
                (h2, h2_server.localhost_url),
                (default, h2_server.localhost_url),
            ]
            return [runner(client.get(f"{url}/echo")).http_version for client, url in sent]
        finally:
            runner.close(h2, default)

    raw = flow(raw_client)
    assert raw == ["HTTP/2", "HTTP/1.1", "HTTP/1.1", "HTTP/2", "HTTP/1.1"]
    assert flow(cf_client) == raw
