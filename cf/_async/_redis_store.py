"""AsyncRedisTokenStore: one OAuth token and one refresh for many processes, through Redis.

Keys. The client's store key (derived from the token URL, client id, scope,
audience and extras, never the secret) is hashed again (SHA-256, 128 bits
kept) and prefixed: `cf-http:token:<hash>` holds the token and
`cf-http:token:<hash>:lock` the refresh lock. Nothing in a key comes from the
secret.

Values. A token is stored as one ASCII string, `cf1.<fingerprint>.<payload>`,
with a TTL that ends when the token expires (24 h for a token of unknown
lifetime). Its times are stored as wall-clock times and translated back to
this process's monotonic clock on reading, so processes (and machines with
synchronised clocks) agree on when it expires. The fingerprint (an HMAC of the
access token) lets Redis drop exactly the token that failed (compare and
delete in Lua) without being able to read it.

At rest. The payload is AES-256-GCM (the `cryptography` package, the `redis`
extra) under a key derived from the client secret with scrypt (stdlib
`hashlib.scrypt`, n=2**14, r=8: about 60 ms, once per client and process), the
Redis key as associated data. So a Redis dump or a replica hands out neither
tokens nor anything that gives the secret away, and a value forged or moved
to another key is rejected. Why these: Python's standard library has no
authenticated cipher, and AES-GCM from `cryptography` is the well-kept
standard one; scrypt instead of a fast KDF such as HKDF because client
secrets are sometimes chosen by people, and every guess of an offline attack
on a dump then costs 60 ms and 16 MiB. The encryption key comes from the
client (`bind()`, see `AsyncBindableTokenStore`) and is never stored; tokens
stored for a key no client bound are kept unencrypted (`cf0.`), with a
WARNING.

The lock. `SET lock <random> NX PX <ttl>`: held by one process, released with
a Lua compare-and-delete by its holder only (a lock key left without an expiry
is given one), expiring after the token
request's timeout plus 5 s (35 s at most) if its holder dies. Waiters poll
with a small jittered backoff (5 ms to 100 ms); the manager then re-reads the
stored token under the lock, so one process fetches and the others take its
result.

Failures. Redis down, slow (each operation is bounded by `timeout`, 0.5 s by
default) or answering garbage never fails a call: `get` falls back to the
token this process last had, `set` keeps the token in this process, `lock`
becomes a lock of this process. So each process fetches its own token (at most
one request per process, the manager's single flight sees to that). That is
logged once at WARNING, Redis is asked again at most once a second, and once
it answers an INFO says sharing resumed; a token fetched meanwhile is offered
to the others (`SET NX`). A value under the key that this client cannot read
counts as no shared token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from cf._oauth import Token
from cf._redact import redact_text, register_secret
from cf._synchronization import AsyncLock, async_sleep
from cf.loggingutils import get_logger, install_redaction

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from typing_extensions import Self

__all__ = ["AsyncRedisTokenStore", "lock_ttl"]

logger = get_logger("cf.infrastructure.http_aio")

_T = TypeVar("_T")

MAX_LOCK_TTL = 35.0  # seconds: SPEC, "35 s at most"
_NO_EXPIRY_TTL_MS = 24 * 3600 * 1000  # a token of unknown lifetime: refetched once a day
_RECHECK = 1.0  # seconds between attempts to reach Redis after a failure
_POLL_FIRST, _POLL_MAX = 0.005, 0.1  # lock polling backoff, seconds
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")  # what may follow "Bearer " (as cf._oauth checks)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 64}
_FP_LEN = 22  # base64url characters of a 16-byte fingerprint

# The Lua scripts: each runs atomically in Redis. A key of another type than string
# (not ours) reads as "" (an unreadable token) and is never deleted by a compare.
_GET = """
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' then return '' end
return v
"""
# Drop the token under KEYS[1] only if its fingerprint (characters 5..26) is ARGV[1].
_CAS_DELETE = """
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'string' and string.sub(v, 5, 4 + string.len(ARGV[1])) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
# Take the lock KEYS[1] with our random value ARGV[1] for ARGV[2] ms. A lock key without
# an expiry is not one of ours (ours always have one): it is given ours, so it ends.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Release the lock KEYS[1] only if we hold it (its value is our random ARGV[1]).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def lock_ttl(request_timeout: float | None) -> float:
    """How long (s) the refresh lock outlives a dead holder: the request timeout + 5 s, <= 35 s."""
    if request_timeout is None or not math.isfinite(request_timeout):
        return MAX_LOCK_TTL
    return min(max(request_timeout, 0.0) + 5.0, MAX_LOCK_TTL)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class _Codec:
    """Turns a `Token` into the string stored under `redis_key`, and back.

    With `cipher_key` (bound): `cf1.` AES-256-GCM; without: `cf0.` plain JSON
    (base64url). Decoding returns None for anything it cannot fully trust.
    """

    redis_key: str
    cipher_key: bytes | None = None
    mac_key: bytes | None = None

    @classmethod
    def derive(cls, redis_key: str, client_secret: str) -> _Codec:
        material = hashlib.scrypt(
            client_secret.encode("utf-8"),
            salt=b"cf-http token store v1\0" + redis_key.encode("utf-8"),
            **_SCRYPT,
        )
        return cls(redis_key, material[:32], material[32:])

    @property
    def version(self) -> str:
        return "cf0" if self.cipher_key is None else "cf1"

    def fingerprint(self, access_token: str) -> str:
        data = access_token.encode("utf-8")
        if self.mac_key is None:
            return _b64(hashlib.sha256(b"cf-http fingerprint\0" + data).digest()[:16])
        return _b64(hmac.new(self.mac_key, data, hashlib.sha256).digest()[:16])

    def encode(self, token: Token, mono_now: float, wall_now: float) -> str:
        payload = json.dumps(
            {
                "a": token.access_token,
                "t": token.token_type,
                "s": token.scope,
                "o": token.obtained_at - mono_now + wall_now,  # wall-clock time
                "e": token.expires_in,
            },
            separators=(",", ":"),
        ).encode("utf-8")
        if self.cipher_key is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            nonce = secrets.token_bytes(12)
            aad = self.redis_key.encode("utf-8")
            payload = nonce + AESGCM(self.cipher_key).encrypt(nonce, payload, aad)
        return f"{self.version}.{self.fingerprint(token.access_token)}.{_b64(payload)}"

    def decode(self, value: object, mono_now: float, wall_now: float) -> Token | None:
        try:
            text = value.decode("ascii") if isinstance(value, bytes) else value
            if not isinstance(text, str):
                return None
            version, fingerprint, body = text.split(".")
            if version != self.version or len(fingerprint) != _FP_LEN:
                return None
            payload = _unb64(body)
            if self.cipher_key is not None:
                from cryptography.exceptions import InvalidTag
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM

                aad = self.redis_key.encode("utf-8")
                try:
                    payload = AESGCM(self.cipher_key).decrypt(payload[:12], payload[12:], aad)
                except InvalidTag:
                    return None
            fields = json.loads(payload.decode("utf-8"))
            return self._token(fields, fingerprint, mono_now, wall_now)
        except (ValueError, TypeError, UnicodeError, RecursionError):
            return None

    def _token(
        self, fields: Any, fingerprint: str, mono_now: float, wall_now: float
    ) -> Token | None:
        if not isinstance(fields, dict):
            return None
        access_token, scope = fields.get("a"), fields.get("s")
        obtained, lifetime = fields.get("o"), fields.get("e")
        if not isinstance(access_token, str) or not _HEADER_SAFE.fullmatch(access_token):
            return None
        if fields.get("t") != "Bearer" or not (scope is None or isinstance(scope, str)):
            return None
        if isinstance(obtained, bool) or not isinstance(obtained, (int, float)):
            return None
        if lifetime is not None and (
            isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime < 0
        ):
            return None
        if not math.isfinite(obtained) or (lifetime is not None and not math.isfinite(lifetime)):
            return None
        if not hmac.compare_digest(fingerprint, self.fingerprint(access_token)):
            return None
        return Token(
            access_token=access_token,
            scope=scope,
            obtained_at=float(obtained) - wall_now + mono_now,
            expires_in=None if lifetime is None else float(lifetime),
        )


@dataclass(slots=True)
class _Entry:
    """This process's copy of a key's token: what it last read, set or fetched."""

    token: Token
    fingerprint: str | None  # of the value in Redis it came from or went to; None: not there
    checked_at: float  # when Redis last confirmed it (monotonic); -inf: never
    shared: bool  # False: fetched while Redis was unreachable, not offered to others yet


class _Unavailable:
    """What a Redis operation returns when it failed or was skipped."""


_UNAVAILABLE = _Unavailable()


class _Health:
    """Whether Redis is used, and the WARNING (once) / INFO when that changes.

    After a failure Redis is skipped for `_RECHECK` s; then one operation (the
    probe) may try it while the others keep going without it.
    """

    def __init__(self, clock: Callable[[], float], where: str) -> None:
        self._clock = clock
        self._where = where
        self._lock = threading.Lock()
        self._down = False
        self._probing = False
        self._retry_at = -math.inf
        self._unreadable_logged = False

    @property
    def down(self) -> bool:
        return self._down

    def begin(self) -> bool:
        """May this operation use Redis now?"""
        with self._lock:
            if not self._down:
                return True
            if self._probing or self._clock() < self._retry_at:
                return False
            self._probing = True
            return True

    def ok(self) -> None:
        with self._lock:
            was_down, self._down, self._probing = self._down, False, False
        if was_down:
            logger.info(
                "Redis token store %s answers again: processes share their token again",
                self._where,
                extra={"token_store": self._where},
            )

    def failed(self, what: str, exc: Exception) -> None:
        with self._lock:
            was_down, self._down, self._probing = self._down, True, False
            self._retry_at = self._clock() + _RECHECK
        if not was_down:
            reason = redact_text(f"{type(exc).__name__}: {exc}")[:300]
            logger.warning(
                "Redis token store %s failed (%s during %s): each process fetches its own "
                "token until Redis answers again",
                self._where,
                reason,
                what,
                extra={"token_store": self._where, "reason": reason},
            )

    def abandoned(self) -> None:
        """The operation was cancelled: neither a success nor a failure."""
        with self._lock:
            self._probing = False

    def unreadable(self, redis_key: str) -> None:
        with self._lock:
            if self._unreadable_logged:
                return
            self._unreadable_logged = True
        logger.warning(
            "Redis token store %s: the value under %s is not a token this client can read "
            "(another client secret, or not written by cf-http); ignoring it",
            self._where,
            redis_key,
            extra={"token_store": self._where},
        )

    def readable(self) -> None:
        self._unreadable_logged = False


class AsyncRedisTokenStore:
    """A token store in Redis: many processes and machines share one token and one refresh.

    `redis`: a `redis://` (or `rediss://`, `unix://`) URL, or a
    `redis.asyncio.Redis` client (a client you pass stays yours to close, and
    its own `socket_timeout` bounds its operations). `timeout`: seconds each
    operation may take before the store goes on without Redis (0.5). `prefix`
    of every key. `lock_timeout`: when the refresh lock of a dead holder
    expires (default: the token request's timeout + 5 s, 35 s at most).
    `cache_ttl`: how long a token read from Redis is reused in this process
    before Redis is asked again (1 s; it is always asked under the lock).
    `clock`: the client's monotonic clock; `wall_clock`: the shared one.
    Close it with `aclose()` or `async with`.
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        timeout: float = 0.5,
        prefix: str = "cf-http:token:",
        lock_timeout: float | None = None,
        cache_ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            import cryptography  # noqa: F401  # needed as soon as a client binds
            import redis.asyncio as redis_py
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError
        except ImportError as exc:  # pragma: no cover - the extra is installed in tests
            raise ImportError(
                f"{type(self).__name__} needs redis-py and cryptography: "
                "pip install 'cf-http[redis]'"
            ) from exc
        self._timeout = _seconds("timeout", timeout)
        self._cache_ttl = _seconds("cache_ttl", cache_ttl, allow_zero=True)
        if lock_timeout is not None:
            lock_timeout = _seconds("lock_timeout", lock_timeout)
            if lock_timeout > MAX_LOCK_TTL:
                raise ValueError(f"lock_timeout must be at most {MAX_LOCK_TTL:g} s")
        self._lock_timeout = lock_timeout
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        self._prefix = prefix
        self._clock = clock
        self._wall_clock = wall_clock
        if isinstance(redis, str):
            parts = urlsplit(redis)
            if parts.scheme not in ("redis", "rediss", "unix"):
                raise ValueError("redis must be a redis://, rediss:// or unix:// URL")
            if parts.password:
                register_secret(parts.password, permanent=True)
            self._redis: Redis = redis_py.Redis.from_url(
                redis,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                # One retry, on a connection error only: a pooled connection that died
                # with a restarted Redis is reopened; a slow Redis costs one `timeout`.
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
            self._owned = True
        elif isinstance(redis, redis_py.Redis):
            self._redis = redis
            self._owned = False
            kwargs = redis.connection_pool.connection_kwargs
            if kwargs.get("password"):
                register_secret(str(kwargs["password"]), permanent=True)
            if kwargs.get("socket_timeout") is None:
                logger.warning(
                    "the Redis client given to %s has no socket_timeout: a Redis that "
                    "hangs would hang calls; create it with socket_timeout=%g",
                    type(self).__name__,
                    self._timeout,
                )
        else:
            what = f"{type(redis).__module__}.{type(redis).__qualname__}"
            raise TypeError(
                f"{type(self).__name__} takes a redis:// URL or a redis.asyncio.Redis "
                f"client, not {what} (a client of the other mode needs the other store)"
            )
        install_redaction("redis")
        kwargs = self._redis.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
        self._where = f"{where}/{kwargs.get('db', 0)}"
        self._health = _Health(clock, self._where)
        self._codecs: dict[str, _Codec] = {}
        self._lock_ttls: dict[str, float] = {}
        self._local: dict[str, _Entry] = {}
        self._locks: dict[str, AsyncLock] = {}
        self._held: dict[str, int] = {}
        self._state = threading.Lock()
        self._unbound_logged = False

    # -- the protocol -----------------------------------------------------------------------

    async def get(self, key: str) -> Token | None:
        """The shared token (this process's own while Redis cannot be used), or None."""
        entry = self._local.get(key)
        now = self._clock()
        fresh = entry is not None and now - entry.checked_at < self._cache_ttl
        if entry is not None and fresh and not self._held.get(key):
            return entry.token
        codec = self._codec(key)
        value = await self._run("GET", lambda: self._redis.eval(_GET, 1, codec.redis_key))
        if isinstance(value, _Unavailable):
            return entry.token if entry is not None else None
        if value is None:
            if entry is not None and not entry.shared and not entry.token.is_expired(now):
                await self._offer(key, codec, entry)
                return entry.token
            self._local.pop(key, None)
            return None
        token = codec.decode(value, self._clock(), self._wall_clock())
        if token is None:
            self._health.unreadable(codec.redis_key)
            if entry is None:
                return None
            entry.fingerprint, entry.checked_at = None, now  # not what Redis holds
            return entry.token
        self._health.readable()
        self._local[key] = _Entry(token, codec.fingerprint(token.access_token), now, True)
        return token

    async def set(self, key: str, token: Token | None) -> None:
        """Store `token` with a TTL ending at its expiry; None forgets the one last seen here."""
        codec = self._codec(key)
        if token is None:
            entry = self._local.pop(key, None)
            if entry is None:
                await self._run("DEL", lambda: self._redis.delete(codec.redis_key))
            elif entry.fingerprint is not None:
                fingerprint = entry.fingerprint
                await self._run(
                    "EVAL", lambda: self._redis.eval(_CAS_DELETE, 1, codec.redis_key, fingerprint)
                )
            return
        entry = _Entry(token, None, -math.inf, False)
        self._local[key] = entry
        value = codec.encode(token, self._clock(), self._wall_clock())
        ttl_ms = self._ttl_ms(token)
        if ttl_ms is None:
            return
        done = await self._run("SET", lambda: self._redis.set(codec.redis_key, value, px=ttl_ms))
        if not isinstance(done, _Unavailable):
            entry.fingerprint, entry.checked_at, entry.shared = value[4:26], self._clock(), True

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """This process's lock for `key`, then the Redis lock (unless Redis cannot be used)."""
        return self._lock(key)

    # -- the optional protocols -------------------------------------------------------------

    def bind(self, key: str, *, client_secret: str, request_timeout: float | None) -> None:
        """Derive the encryption key for `key` from `client_secret` (not kept); set the lock TTL.

        Called by the OAuth client at creation; about 60 ms (scrypt) the first
        time for a (key, secret) pair.
        """
        if not isinstance(client_secret, str) or not client_secret:
            raise ValueError("client_secret must be a non-empty str")
        redis_key = self._redis_key(key)
        codec = _Codec.derive(redis_key, client_secret)
        with self._state:
            if self._codecs.get(key) != codec:
                self._codecs[key] = codec
                self._local.pop(key, None)
            self._lock_ttls[key] = lock_ttl(request_timeout)

    async def invalidate(self, key: str, token: Token) -> bool:
        """Forget the token under `key` only if it is `token` (atomic in Redis); True if so."""
        codec = self._codec(key)
        entry = self._local.get(key)
        dropped = entry is not None and entry.token.access_token == token.access_token
        if dropped:
            self._local.pop(key, None)
        fingerprint = codec.fingerprint(token.access_token)
        deleted = await self._run(
            "EVAL", lambda: self._redis.eval(_CAS_DELETE, 1, codec.redis_key, fingerprint)
        )
        return dropped or deleted == 1

    # -- closing ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the Redis client if the store created it (from a URL)."""
        if self._owned:
            await self._redis.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "down" if self._health.down else "up"
        return f"<{type(self).__name__} {self._where} prefix={self._prefix!r} {state}>"

    # -- inside -----------------------------------------------------------------------------

    def _redis_key(self, key: str) -> str:
        return self._prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    def _codec(self, key: str) -> _Codec:
        codec = self._codecs.get(key)
        if codec is None:
            with self._state:
                codec = self._codecs.get(key)
                if codec is None:
                    codec = self._codecs[key] = _Codec(self._redis_key(key))
                    if not self._unbound_logged:
                        self._unbound_logged = True
                        logger.warning(
                            "Redis token store %s: no encryption key for this token "
                            "(its client did not call bind()): tokens stored unencrypted",
                            self._where,
                        )
        return codec

    def _ttl_ms(self, token: Token) -> int | None:
        """Milliseconds until `token` expires (None: already expired, do not store)."""
        if token.expires_at is None:
            return _NO_EXPIRY_TTL_MS
        left = token.expires_at - self._clock()
        return math.ceil(left * 1000) if left > 0 else None

    async def _offer(self, key: str, codec: _Codec, entry: _Entry) -> None:
        """Redis is back and empty: offer the token fetched meanwhile to the others."""
        ttl_ms = self._ttl_ms(entry.token)
        if ttl_ms is None:
            return
        value = codec.encode(entry.token, self._clock(), self._wall_clock())
        done = await self._run(
            "SET NX", lambda: self._redis.set(codec.redis_key, value, px=ttl_ms, nx=True)
        )
        if done is True:  # else someone offered theirs first: adopted at the next read
            entry.fingerprint, entry.checked_at, entry.shared = value[4:26], self._clock(), True

    async def _run(self, what: str, op: Callable[[], Awaitable[_T]]) -> _T | _Unavailable:
        """One Redis operation; `_UNAVAILABLE` when it fails or Redis is being skipped."""
        if not self._health.begin():
            return _UNAVAILABLE
        try:
            result = await op()
        except Exception as exc:
            self._health.failed(what, exc)
            return _UNAVAILABLE
        except BaseException:
            self._health.abandoned()
            raise
        self._health.ok()
        return result

    @asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        local = self._locks.get(key)
        if local is None:
            local = self._locks.setdefault(key, AsyncLock())
        async with local:
            with self._state:
                self._held[key] = self._held.get(key, 0) + 1
            try:
                owner = await self._acquire(key)
                try:
                    yield
                finally:
                    if owner is not None:
                        lock_key, value = owner
                        await self._run(
                            "EVAL", lambda: self._redis.eval(_RELEASE, 1, lock_key, value)
                        )
            finally:
                with self._state:
                    self._held[key] -= 1

    async def _acquire(self, key: str) -> tuple[str, str] | None:
        """Take the Redis lock, polling; None: going on with this process's lock only."""
        lock_key = self._redis_key(key) + ":lock"
        value = secrets.token_hex(16)
        ttl = self._lock_timeout or self._lock_ttls.get(key, MAX_LOCK_TTL)
        ttl_ms = math.ceil(ttl * 1000)
        give_up = self._clock() + ttl + 1.0  # the holder's lock has expired by then
        delay = _POLL_FIRST
        while True:
            got = await self._run(
                "EVAL", lambda: self._redis.eval(_ACQUIRE, 1, lock_key, value, ttl_ms)
            )
            if isinstance(got, _Unavailable):
                return None
            if got == 1:
                return lock_key, value
            if self._clock() >= give_up:
                logger.warning(
                    "Redis token store %s: the refresh lock stayed taken for %.1f s; "
                    "going on without it",
                    self._where,
                    ttl + 1.0,
                    extra={"token_store": self._where},
                )
                return None
            await async_sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 1.5, _POLL_MAX)


def _seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, got {value!r}")
    return float(value)
