"""AsyncRedisTokenStore against a real redis-server and the oauthlib token endpoint.

Generated into tests/_sync. "Processes" are real spawned processes where the
test is about processes (the fleet, the killed lock holder); elsewhere each
(client, store) pair stands for one process: a store keeps no state outside
its instance. Tokens live 1 or 2 s (the server's `expires_in`), so a refresh
window is 0.5 or 1 s (half the lifetime, the refresh margin's cap).
"""

from __future__ import annotations

import base64
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cf._async._redis_store import MAX_LOCK_TTL, AsyncRedisTokenStore, _Codec, lock_ttl
from cf._async._token_store import AsyncBindableTokenStore, AsyncTokenInvalidator
from cf._oauth import OAuthConfig
from cf._synchronization import async_sleep
from cf.infrastructure.http_aio import OAuthHTTPAio, Token
from tests.helpers import run_concurrently
from tests.servers.oauth import OAuthServer
from tests.servers.redis import RedisServer, async_run, wrong_mode_client_async

SECRET = "s3cr3t-Value:with&odd=chars"
LOGGER = "cf.infrastructure.http_aio"
KEY = "cf-oauth:test-key"
LOCK_TIMEOUT = 2.0  # a dead holder's lock ends this fast here (the client's default: 35 s)


def bind(store: AsyncRedisTokenStore, token_url: str, client_id: str = "id") -> None:
    """Bind the store as the OAuth client will at creation (until it does it itself)."""
    config = OAuthConfig.create(client_id=client_id, client_secret=SECRET, authorize_url=token_url)
    store.bind(config.store_key, client_secret=SECRET, request_timeout=None)


def token_keys(redis_server: RedisServer) -> list[bytes]:
    return sorted(k for k in redis_server.command("KEYS", "*") if not k.endswith(b":lock"))


def gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in zip(ordered, ordered[1:], strict=False)]


@pytest.fixture
def oauth(oauth_server: OAuthServer) -> OAuthServer:
    oauth_server.client_secret = SECRET
    return oauth_server


@pytest.fixture
async def make_store(
    redis_server: RedisServer,
) -> AsyncIterator[Callable[..., AsyncRedisTokenStore]]:
    made: list[AsyncRedisTokenStore] = []

    def make(**options: Any) -> AsyncRedisTokenStore:
        options.setdefault("lock_timeout", LOCK_TIMEOUT)
        store = AsyncRedisTokenStore(redis_server.url, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


@dataclass
class Process:
    """One (client, store) pair: what one process of a fleet holds."""

    client: OAuthHTTPAio
    store: AsyncRedisTokenStore
    token_requests: list[float] = field(default_factory=list)


@pytest.fixture
async def make_process(
    oauth: OAuthServer, make_store: Callable[..., AsyncRedisTokenStore]
) -> AsyncIterator[Callable[..., Process]]:
    made: list[Process] = []

    def make(client_id: str = "id", **options: Any) -> Process:
        store = make_store(**options)
        bind(store, oauth.token_url, client_id)
        requests: list[float] = []

        async def count(request: httpx.Request) -> None:
            if request.url.path == "/token":
                requests.append(time.monotonic())

        client = OAuthHTTPAio.create(
            client_id=client_id,
            client_secret=SECRET,
            authorize_url=oauth.token_url,
            token_store=store,
            attempt_hooks={"request": [count]},  # token requests are attempts too
            timeout=5.0,
        )
        made.append(Process(client, store, requests))
        return made[-1]

    yield make
    for process in made:
        await process.client.aclose()


# --- pure parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_timeout", "expected"),
    [
        pytest.param(None, MAX_LOCK_TTL, id="unknown"),
        pytest.param(1.0, 6.0, id="short"),
        pytest.param(30.0, 35.0, id="default-timeout"),
        pytest.param(300.0, 35.0, id="capped"),
        pytest.param(float("inf"), 35.0, id="infinite"),
    ],
)
def test_lock_ttl(request_timeout: float | None, expected: float) -> None:
    assert lock_ttl(request_timeout) == expected


tokens = st.builds(
    Token,
    access_token=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
    scope=st.none() | st.text(max_size=40),
    obtained_at=st.floats(-1e6, 1e6),
    expires_in=st.none() | st.floats(0, 1e6),
)


CODECS = {"bound": _Codec.derive("k", "secret"), "plain": _Codec("k")}


@given(token=tokens, bound=st.booleans(), mono=st.floats(0, 1e6), skew=st.floats(-1e6, 1e6))
def test_codec_round_trip_translates_the_clock(
    token: Token, bound: bool, mono: float, skew: float
) -> None:
    codec = CODECS["bound" if bound else "plain"]
    wall = 1.7e9
    value = codec.encode(token, mono, wall)
    assert value.isascii()
    # Another process: another monotonic clock, the same wall clock.
    back = codec.decode(value.encode(), mono + skew, wall)
    assert back is not None
    assert back.access_token == token.access_token
    assert back.scope == token.scope and back.expires_in == token.expires_in
    assert back.obtained_at == pytest.approx(token.obtained_at + skew, abs=1e-6)


def test_codec_rejects_what_it_cannot_trust() -> None:
    token = Token("tok-123456", obtained_at=5.0, expires_in=60.0)
    codec = _Codec.derive("k", "secret")
    value = codec.encode(token, 10.0, 1000.0)
    version, fingerprint, body = value.split(".")
    other_key = _Codec.derive("other", "secret")
    other_secret = _Codec.derive("k", "another secret")
    plain = _Codec("k").encode(token, 10.0, 1000.0)
    for bad in [
        None,
        b"",
        b"garbage",
        "cf1.x.y",
        value[:-4],  # truncated ciphertext
        f"{version}.{'A' * 22}.{body}",  # fingerprint of another token
        value.replace(body, body[::-1]),
        plain,  # not encrypted: refused once a secret is bound
        b"\xff\xfe",
        12,
    ]:
        assert codec.decode(bad, 10.0, 1000.0) is None, bad
    assert other_key.decode(value, 10.0, 1000.0) is None  # moved to another key
    assert other_secret.decode(value, 10.0, 1000.0) is None
    assert codec.decode(value, 10.0, 1000.0) == token


# --- creation ------------------------------------------------------------------------------


async def test_rejects_bad_arguments(redis_server: RedisServer) -> None:
    other = wrong_mode_client_async(redis_server.url)
    with pytest.raises(TypeError, match="the other mode"):
        AsyncRedisTokenStore(other)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="redis:// URL"):
        AsyncRedisTokenStore(6379)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="redis://"):
        AsyncRedisTokenStore("http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="timeout"):
        AsyncRedisTokenStore(redis_server.url, timeout=0)
    with pytest.raises(ValueError, match="at most 35"):
        AsyncRedisTokenStore(redis_server.url, lock_timeout=36)
    with pytest.raises(TypeError, match="prefix"):
        AsyncRedisTokenStore(redis_server.url, prefix=b"x")  # type: ignore[arg-type]


async def test_is_a_token_store_with_the_optional_protocols(redis_server: RedisServer) -> None:
    from cf._async._token_store import AsyncTokenStore

    async with AsyncRedisTokenStore(redis_server.url) as store:
        assert isinstance(store, AsyncTokenStore)
        assert isinstance(store, AsyncBindableTokenStore)
        assert isinstance(store, AsyncTokenInvalidator)
        assert "secret" not in repr(store) and str(redis_server.port) in repr(store)


# --- the store ------------------------------------------------------------------------------


async def test_stored_under_a_hashed_key_with_the_token_s_ttl_and_wall_clock_times(
    redis_server: RedisServer,
) -> None:
    writer = AsyncRedisTokenStore(redis_server.url, clock=lambda: 100.0, wall_clock=lambda: 5e8)
    reader = AsyncRedisTokenStore(redis_server.url, clock=lambda: 7.0, wall_clock=lambda: 5e8)
    try:
        for store in (writer, reader):
            store.bind(KEY, client_secret=SECRET, request_timeout=1.0)
        token = Token("the-access-token", scope="read", obtained_at=90.0, expires_in=60.0)
        await writer.set(KEY, token)
        [key] = token_keys(redis_server)
        assert key.startswith(b"cf-http:token:") and b"test-key" not in key
        assert 49_000 < redis_server.command("PTTL", key) <= 50_000  # expires with the token
        value = redis_server.command("GET", key)
        assert value.startswith(b"cf1.") and b"the-access-token" not in value
        back = await reader.get(KEY)
        assert back is not None and back.access_token == "the-access-token"
        assert back.obtained_at == pytest.approx(-3.0)  # 10 s before the reader's "now"
        assert back.expires_in == 60.0 and back.scope == "read"
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_invalidation_drops_only_the_token_that_failed(
    make_store: Callable[..., AsyncRedisTokenStore],
) -> None:
    a, b = make_store(), make_store()
    c = make_store(cache_ttl=0)  # an observer that always asks Redis
    for store in (a, b, c):
        store.bind(KEY, client_secret=SECRET, request_timeout=None)
    t1, t2, t3 = (Token(f"token-{n}", obtained_at=time.monotonic(), expires_in=60) for n in "123")
    await a.set(KEY, t1)
    assert await stored(b) == "token-1"
    await a.set(KEY, t2)  # a renewed it; b still holds t1 and meets a 401 with it
    await b.invalidate(KEY, t1)
    assert await stored(c) == "token-2"
    assert await stored(b) == "token-2"
    # The protocol's path (lock, get, compare, set None): b read t2, a renewed meanwhile.
    await a.set(KEY, t3)
    async with b.lock(KEY):
        await b.set(KEY, None)  # forgets the t2 it read, not the t3 it did not
    assert await stored(c) == "token-3"
    assert await a.invalidate(KEY, t3) is True
    assert await c.get(KEY) is None


async def stored(store: AsyncRedisTokenStore) -> str | None:
    token = await store.get(KEY)
    return None if token is None else token.access_token


async def test_the_lock_expires_and_is_released_only_by_its_holder(
    redis_server: RedisServer, make_store: Callable[..., AsyncRedisTokenStore]
) -> None:
    a, b = make_store(lock_timeout=0.5), make_store(lock_timeout=0.5)
    held_by_a = a.lock(KEY)
    await held_by_a.__aenter__()
    [lock_key] = redis_server.command("KEYS", "*:lock")
    assert 0 < redis_server.command("PTTL", lock_key) <= 500
    started = time.monotonic()
    held_by_b = b.lock(KEY)
    await held_by_b.__aenter__()  # waits for a's lock to expire (a "died")
    assert 0.3 < time.monotonic() - started < 1.5
    b_value = redis_server.command("GET", lock_key)
    await held_by_a.__aexit__(None, None, None)  # a wakes up late: b's lock stays
    assert redis_server.command("GET", lock_key) == b_value
    await held_by_b.__aexit__(None, None, None)
    assert redis_server.command("EXISTS", lock_key) == 0


async def test_a_lock_key_without_expiry_does_not_block_forever(
    redis_server: RedisServer, make_store: Callable[..., AsyncRedisTokenStore]
) -> None:
    store = make_store(lock_timeout=0.3)
    async with store.lock(KEY):
        [lock_key] = redis_server.command("KEYS", "*:lock")
    redis_server.command("SET", lock_key, "left by someone")  # no PX
    started = time.monotonic()
    async with store.lock(KEY):
        assert redis_server.command("GET", lock_key) != b"left by someone"
    assert time.monotonic() - started < 1.0


# --- through the clients ---------------------------------------------------------------------


async def test_processes_share_one_token(
    oauth: OAuthServer, make_process: Callable[..., Process]
) -> None:
    fleet = [make_process() for _ in range(4)]
    results = await run_concurrently(
        *(lambda p=p: p.client.get(oauth.api_url) for p in fleet for _ in range(5))
    )
    assert [r.status_code for r in results] == [200] * 20
    assert oauth.token_requests == 1


async def test_garbage_under_the_key_is_no_token(
    oauth: OAuthServer,
    redis_server: RedisServer,
    make_process: Callable[..., Process],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = make_process()
    assert (await first.client.get(oauth.api_url)).status_code == 200
    [key] = token_keys(redis_server)
    other_secret = AsyncRedisTokenStore(redis_server.url)
    config = OAuthConfig.create(client_id="id", client_secret=SECRET, authorize_url=oauth.token_url)
    other_secret.bind(config.store_key, client_secret="another secret", request_timeout=None)
    await other_secret.set(
        config.store_key, Token("not-for-you", obtained_at=time.monotonic(), expires_in=60)
    )
    await other_secret.aclose()
    foreign = redis_server.command("GET", key)
    for garbage in [b"garbage", b"cf1..", b"\xff" * 40, foreign, None]:
        caplog.clear()
        if garbage is None:  # another type of value
            redis_server.command("DEL", key)
            redis_server.command("RPUSH", key, "x")
        else:
            redis_server.command("SET", key, garbage)
        before = oauth.token_requests
        newcomer = make_process()  # a process that starts now finds no token: fetches one
        assert (await newcomer.client.get(oauth.api_url)).status_code == 200
        assert oauth.token_requests == before + 1
        assert redis_server.command("GET", key).startswith(b"cf1.")  # and stores a good one
        assert (await first.client.get(oauth.api_url)).status_code == 200
        warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
        assert len(warnings) <= 1 and all("SET" not in r.getMessage() for r in warnings)


async def test_two_client_ids_sharing_a_store_stay_apart(
    oauth: OAuthServer, redis_server: RedisServer, make_store: Callable[..., AsyncRedisTokenStore]
) -> None:
    store = make_store()
    clients = []
    for client_id in ("alpha", "beta"):
        bind(store, oauth.token_url, client_id)
        clients.append(
            OAuthHTTPAio.create(
                client_id=client_id,
                client_secret=SECRET,
                authorize_url=oauth.token_url,
                token_store=store,
            )
        )
    try:
        for client in clients:
            oauth.client_id = client.client_id  # the server knows one client at a time
            assert (await client.get(oauth.api_url)).status_code == 200
        alpha_token, beta_token = oauth.issued_tokens
        assert alpha_token != beta_token
        for client, token in zip(clients, (alpha_token, beta_token), strict=True):
            assert (await client.token()).access_token == token
            assert (await client.get(oauth.api_url)).status_code == 200
            assert oauth.api_request_log[-1].header("authorization") == f"Bearer {token}"
        assert oauth.token_requests == 2
        assert len(token_keys(redis_server)) == 2
    finally:
        for client in clients:
            await client.aclose()


async def test_nothing_in_redis_gives_the_secret_or_a_token_away(
    oauth: OAuthServer, redis_server: RedisServer, make_process: Callable[..., Process]
) -> None:
    fleet = [make_process(), make_process(client_id="beta")]
    assert (await fleet[0].client.get(oauth.api_url)).status_code == 200
    oauth.client_id = "beta"
    oauth.latency = 0.5
    pending = await run_concurrently(
        lambda: fleet[1].client.get(oauth.api_url),
        lambda: snapshot_while_locked(redis_server),
    )
    assert pending[0].status_code == 200
    dumps = [pending[1], redis_server.dump()]
    assert any(k.endswith(b":lock") for k in dumps[0]), "the lock was not seen"
    secret = SECRET.encode()
    forms = {
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
        quote_plus(SECRET).encode(),
        base64.b64encode(f"id:{quote_plus(SECRET)}".encode()),
    }
    forms |= {issued.encode() for issued in oauth.issued_tokens}
    assert len(oauth.issued_tokens) == 2
    for dump in dumps:
        for key, value in dump.items():
            for text in (key, value, *decoded_parts(value)):
                for form in forms:
                    assert form not in text, (key, form)


def decoded_parts(value: bytes) -> list[bytes]:
    """Every '.'-separated part of `value` that decodes as base64 (either alphabet)."""
    parts = []
    for part in value.split(b"."):
        padded = part + b"=" * (-len(part) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                parts.append(decode(padded))
            except ValueError:
                pass
    return parts


async def snapshot_while_locked(redis_server: RedisServer) -> dict[bytes, Any]:
    for _ in range(200):
        dump = redis_server.dump()
        if any(k.endswith(b":lock") for k in dump):
            return dump
        await async_sleep(0.01)
    return {}


async def test_the_client_binds_its_store(
    oauth: OAuthServer, redis_server: RedisServer, make_store: Callable[..., AsyncRedisTokenStore]
) -> None:
    store = make_store()
    async with OAuthHTTPAio.create(
        client_id="id", client_secret=SECRET, authorize_url=oauth.token_url, token_store=store
    ) as client:
        assert (await client.get(oauth.api_url)).status_code == 200
    [key] = token_keys(redis_server)
    assert redis_server.command("GET", key).startswith(b"cf1.")


async def test_a_401_from_many_processes_causes_one_new_token(
    oauth: OAuthServer, make_process: Callable[..., Process]
) -> None:
    fleet = [make_process() for _ in range(3)]
    for process in fleet:
        assert (await process.client.get(oauth.api_url)).status_code == 200
    first = oauth.current_token
    oauth.revoke_current()
    results = await run_concurrently(
        *(lambda p=p: p.client.get(oauth.api_url) for p in fleet for _ in range(4))
    )
    assert [r.status_code for r in results] == [200] * 12
    assert oauth.token_requests == 2
    assert first != oauth.current_token
    for process in fleet:
        assert (await process.client.token()).access_token == oauth.current_token


# --- Redis down, slow, back ------------------------------------------------------------------


async def calls_for(fleet: list[Process], url: str, seconds: float, pause: float = 0.03) -> int:
    """Every process calls `url` until `seconds` have passed; every call must succeed."""
    end = time.monotonic() + seconds

    async def loop(process: Process) -> int:
        done = 0
        while time.monotonic() < end:
            response = await process.client.get(url)
            assert response.status_code == 200
            done += 1
            await async_sleep(pause)
        return done

    results = await run_concurrently(*(lambda p=p: loop(p) for p in fleet))
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return sum(results)


@pytest.fixture
def caplog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)  # the INFO that says sharing resumed
    return caplog


def store_logs(caplog: pytest.LogCaptureFixture, level: int, text: str) -> int:
    return sum(
        1
        for r in caplog.records
        if r.name == LOGGER and r.levelno == level and text in r.getMessage()
    )


async def test_redis_stopped_then_restarted(
    oauth: OAuthServer,
    redis_server: RedisServer,
    make_process: Callable[..., Process],
    caplog: pytest.LogCaptureFixture,
) -> None:
    oauth.expires_in = 1  # renewed every 0.5 s
    fleet = [make_process() for _ in range(3)]
    await calls_for(fleet, oauth.api_url, 0.3)
    assert oauth.token_requests == 1
    redis_server.stop()
    await calls_for(fleet, oauth.api_url, 1.3)
    for process in fleet:  # each process on its own: at most one request per window
        assert 1 <= len(process.token_requests) <= 4
        assert min(gaps(process.token_requests)) > 0.3
    assert store_logs(caplog, logging.WARNING, "fetches its own token") == 3  # once each
    redis_server.start()
    resumed_at = time.monotonic()
    await calls_for(fleet, oauth.api_url, 2.5)
    assert store_logs(caplog, logging.INFO, "answers again") == 3
    assert store_logs(caplog, logging.WARNING, "fetches its own token") == 3
    # Each store asks Redis again within a second of its last failure: shared again.
    settled = [t for t in (r.time for r in oauth.token_request_log) if t > resumed_at + 1.5]
    assert 1 <= len(settled) <= 3 and min(gaps(settled), default=1.0) > 0.3  # shared again


async def test_a_token_fetched_while_redis_was_down_is_offered_once_it_is_back(
    oauth: OAuthServer, redis_server: RedisServer, make_process: Callable[..., Process]
) -> None:
    redis_server.stop()
    early = make_process()
    assert (await early.client.get(oauth.api_url)).status_code == 200  # its own token
    redis_server.start()
    await async_sleep(1.0)  # the store asks Redis again a second after it failed
    assert (await early.client.get(oauth.api_url)).status_code == 200
    assert len(token_keys(redis_server)) == 1  # offered to the others (SET NX)
    late = make_process()
    assert (await late.client.get(oauth.api_url)).status_code == 200
    assert oauth.token_requests == 1


@pytest.mark.parametrize("how", ["pause", "freeze"])
async def test_redis_slow(
    how: str,
    oauth: OAuthServer,
    redis_server: RedisServer,
    make_process: Callable[..., Process],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = [make_process(timeout=0.2, cache_ttl=0) for _ in range(2)]
    await calls_for(fleet, oauth.api_url, 0.2)
    assert oauth.token_requests == 1
    if how == "pause":
        redis_server.pause(1.5)  # CLIENT PAUSE: commands wait
    else:
        redis_server.freeze()  # SIGSTOP: even new connections get no answer
    slowest = 0.0
    end = time.monotonic() + 1.2
    while time.monotonic() < end:
        for process in fleet:
            started = time.monotonic()
            assert (await process.client.get(oauth.api_url)).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
    redis_server.thaw()
    assert slowest < 0.2 * 3 + 0.3  # a call waits for Redis at most `timeout` per operation
    assert oauth.token_requests == 1  # the token was still good: nothing to fetch
    assert store_logs(caplog, logging.WARNING, "fetches its own token") == 2
    await async_sleep(0.5 if how == "pause" else 0.0)
    await calls_for(fleet, oauth.api_url, 1.5)
    assert store_logs(caplog, logging.INFO, "answers again") == 2


# --- real processes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What each spawned process of a fleet does."""

    token_url: str
    api_url: str
    redis_url: str
    tasks: int
    seconds: float
    pause: float


class Recorder(logging.Handler):
    """Keeps (time, message) of the store's records: the story of one process."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append((time.monotonic(), record.getMessage()[:120]))


async def fleet_worker(plan: Plan, go: Any, results: Any) -> dict[str, Any]:
    token_requests: list[float] = []
    statuses: list[int] = []
    errors: list[str] = []
    recorder = Recorder()
    store_logger = logging.getLogger(LOGGER)
    store_logger.addHandler(recorder)
    store_logger.setLevel(logging.INFO)
    store_logger.propagate = False

    async def count(request: httpx.Request) -> None:
        if request.url.path == "/token":
            token_requests.append(time.monotonic())

    # A generous `timeout`: a starved machine must not make Redis look slow here.
    store = AsyncRedisTokenStore(plan.redis_url, timeout=2.0, lock_timeout=LOCK_TIMEOUT)
    async with store:
        bind(store, plan.token_url)
        async with OAuthHTTPAio.create(
            client_id="id",
            client_secret=SECRET,
            authorize_url=plan.token_url,
            token_store=store,
            attempt_hooks={"request": [count]},  # token requests are attempts too
            timeout=5.0,
        ) as client:
            results.put(("ready", os.getpid()))
            go.wait()
            end = time.monotonic() + plan.seconds

            async def loop() -> None:
                while time.monotonic() < end:
                    try:
                        statuses.append((await client.get(plan.api_url)).status_code)
                    except Exception as exc:
                        errors.append(repr(exc))
                    await async_sleep(plan.pause)

            await run_concurrently(*([loop] * plan.tasks))
    return {
        "pid": os.getpid(),
        "statuses": statuses,
        "errors": errors,
        "fetched": token_requests,
        "events": recorder.events,
    }


def processes_context() -> Any:
    """Fresh processes forked from a clean server process that imported these tests once.

    "forkserver": no thread of pytest's is copied (as with "fork") and each
    process starts in milliseconds, not after a second of imports (as "spawn").
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        [f"tests._{mode}.test_redis_store" for mode in ("async", "sync")]
        + ["cryptography.hazmat.primitives.ciphers.aead", "redis.asyncio", "oauthlib.oauth2"]
        + ["cf._transports._aiohttp"]  # the default engine; an ImportError is ignored here
    )
    return ctx


def fleet_main(plan: Plan, go: Any, results: Any) -> None:
    results.put(("done", async_run(fleet_worker, plan, go, results)))


def run_fleet(
    plan: Plan, processes: int, during: Callable[[float], None] | None = None
) -> list[dict[str, Any]]:
    """Start the fleet's processes, let them go at once, call `during(start)`, collect."""
    ctx = processes_context()
    results = ctx.Queue()
    go = ctx.Event()
    fleet = [ctx.Process(target=fleet_main, args=(plan, go, results)) for _ in range(processes)]
    for process in fleet:
        process.start()
    try:
        for _ in fleet:
            assert results.get(timeout=60)[0] == "ready"
        go.set()
        started = time.monotonic()
        if during is not None:
            during(started)
        return [results.get(timeout=plan.seconds + 30)[1] for _ in fleet]
    finally:
        for process in fleet:
            process.join(10)
            if process.is_alive():
                process.kill()


def story(outcomes: list[dict[str, Any]], marks: dict[str, float]) -> str:
    """What each process fetched and logged, in seconds since Redis was killed."""
    base = marks["killed"]
    lines = [f"Redis back at {marks['back'] - base:.3f}"]
    for o in outcomes:
        fetched = [round(t - base, 3) for t in o["fetched"]]
        events = [(round(t - base, 3), text[:50]) for t, text in o["events"]]
        lines.append(f"{o['pid']}: fetched {fetched} logged {events}")
    return "\n".join(lines)


def one_per_window(times: list[float], seconds: float, window: float = 1.0) -> bool:
    """No two token requests in one refresh window, over `seconds`.

    Two requests of one window come together (those who lost the race for the
    lock, or never saw it, fetch right after the winner), so they are closer
    than 0.3 s; on a starved machine requests of consecutive windows can come
    closer than a window, never that close.
    """
    return len(times) <= seconds / window + 1 and min(gaps(times), default=window) > 0.3


def test_fleet_one_token_request_per_expiry_window(
    oauth: OAuthServer, redis_server: RedisServer
) -> None:
    """20 processes x 5 tasks; Redis killed mid-run, then back: every call succeeds."""
    oauth.expires_in = 2  # renewed every second, by every process at once
    plan = Plan(oauth.token_url, oauth.api_url, redis_server.url, 5, 9.0, 0.5)
    marks: dict[str, float] = {}

    def during(started: float) -> None:
        marks["go"] = started
        time.sleep(max(0.0, started + 2.6 - time.monotonic()))
        marks["killed"] = time.monotonic()
        redis_server.kill()
        time.sleep(max(0.0, started + 4.4 - time.monotonic()))
        redis_server.start()
        marks["back"] = time.monotonic()

    outcomes = run_fleet(plan, 20, during)
    assert [o["errors"] for o in outcomes] == [[]] * 20
    assert {s for o in outcomes for s in o["statuses"]} == {200}
    # When each process sent its token requests (the server may see them late).
    sent = sorted(t for o in outcomes for t in o["fetched"])
    assert len(sent) == oauth.token_requests
    killed, back = marks["killed"], marks["back"]
    shared = [t for t in sent if t < killed]
    assert len(shared) >= 2 and one_per_window(shared, killed - marks["go"]), story(outcomes, marks)
    for outcome in outcomes:  # Redis dead: each process on its own, one per window at most
        alone = [t for t in outcome["fetched"] if killed <= t < back]
        assert one_per_window(alone, back - killed), story(outcomes, marks)
    # Each process asks Redis again within a second of its last failure: shared again
    # (2.5 s of margin: on a loaded machine a process may notice a second late).
    resumed = [t for t in sent if t > back + 2.5]
    assert one_per_window(resumed, marks["go"] + plan.seconds - back - 2.5), story(outcomes, marks)


async def holder_worker(token_url: str, api_url: str, redis_url: str) -> None:
    async with AsyncRedisTokenStore(redis_url, lock_timeout=LOCK_TIMEOUT) as store:
        bind(store, token_url)
        async with OAuthHTTPAio.create(
            client_id="id", client_secret=SECRET, authorize_url=token_url, token_store=store
        ) as client:
            await client.get(api_url)  # the token endpoint stalls: killed in there


def holder_main(token_url: str, api_url: str, redis_url: str) -> None:
    async_run(holder_worker, token_url, api_url, redis_url)


async def test_lock_holder_killed_mid_fetch(
    oauth: OAuthServer, redis_server: RedisServer, make_process: Callable[..., Process]
) -> None:
    oauth.latency = 30.0
    holder = processes_context().Process(
        target=holder_main, args=(oauth.token_url, oauth.api_url, redis_server.url)
    )
    holder.start()
    try:
        for _ in range(1500):
            if oauth.token_requests == 1 and redis_server.command("KEYS", "*:lock"):
                break
            await async_sleep(0.01)
        else:
            pytest.fail("the holder did not take the lock and start fetching")
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
    finally:
        if holder.is_alive():
            holder.kill()
    oauth.latency = 0.0
    taker = make_process()
    [lock_key] = redis_server.command("KEYS", "*:lock")
    left = redis_server.command("PTTL", lock_key) / 1000
    started = time.monotonic()
    assert (await taker.client.get(oauth.api_url)).status_code == 200
    waited = time.monotonic() - started
    assert left - 0.2 < waited < left + 1.0  # it waited for the dead holder's lock, no longer
    assert oauth.token_requests == 2
