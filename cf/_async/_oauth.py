"""OAuthHTTPAio: HTTPAio whose httpx client authenticates with `AsyncClientCredentialsAuth`.

The OAuth behaviour is the auth's (see `cf/_async/_auth.py`); this facade
builds it from the client's options: token requests go through the client's
own transport (its engine, proxies, retry policy and budget) on an httpx
client of their own (no redirects, event hooks, default headers, params or
cookies of the API client), and the bearer is limited to the origin of
`base_url` when one is set and `token_origins` is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from cf._async._auth import AsyncClientCredentialsAuth
from cf._async._client import HTTPAio
from cf._async._pool import HTTPAioPool
from cf._oauth import Token
from cf._options import OAUTH_OPTIONS, check_bool, origin_of, pool_limits

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from cf._async._types import OAuthClientOptions

__all__ = ["OAuthHTTPAio"]


class OAuthHTTPAio(HTTPAio):
    """An `HTTPAio` that authenticates every request with an OAuth2 client-credentials token.

    `authorize_url` is the token endpoint. The first token is fetched on the
    first request (creating the client does no I/O). See `OAuthClientOptions`
    and the README for every option and its default.
    """

    def __init__(self, **options: Unpack[OAuthClientOptions]) -> None:
        oauth: dict[str, Any] = {k: options.pop(k) for k in OAUTH_OPTIONS if k in options}  # type: ignore[misc]
        missing = [k for k in ("client_id", "client_secret", "authorize_url") if k not in oauth]
        if missing:
            raise TypeError(f"missing required keyword argument(s): {', '.join(missing)}")
        if "auth" in options:
            raise TypeError("OAuthHTTPAio sets its own auth; give auth= per call to override it")
        check_bool("allow_insecure_http", oauth.get("allow_insecure_http", False))
        super().__init__(**options)  # type: ignore[misc]
        if oauth.get("token_origins") is None and self._base_url.host:
            oauth["token_origins"] = [origin_of(self._base_url)]
        token_client = httpx.AsyncClient(
            transport=self._transport,
            mounts=self._mounts,
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
        )
        self._auth = AsyncClientCredentialsAuth(
            token_url=oauth.pop("authorize_url"),
            **oauth,
            client=token_client,
            retry_policy=self._settings.policy,
            retry_budget=self._settings.budget,
            on_retry=self._settings.on_retry,
            clock=self._settings.clock,
            random=self._settings.random,
        )
        self._client.auth = self._auth

    # Creation ---------------------------------------------------------------

    @classmethod
    def create(  # type: ignore[override]  # the OAuth settings are required
        cls, **options: Unpack[OAuthClientOptions]
    ) -> Self:
        """A client with these OAuth settings and client defaults; no I/O until a request."""
        return cls(**options)

    @classmethod
    def create_pool(  # type: ignore[override]  # the OAuth settings are required
        cls, size: int, **options: Unpack[OAuthClientOptions]
    ) -> HTTPAioPool[Self]:
        """A pool of `size` connections sharing one token: `async with pool.item() as client`."""
        options["limits"] = pool_limits(size)
        return HTTPAioPool(cls(**options), size)

    # Tokens -----------------------------------------------------------------

    @property
    def auth(self) -> AsyncClientCredentialsAuth:
        """The `httpx.Auth` this client authenticates with (usable on any httpx client)."""
        return self._auth

    @property
    def client_id(self) -> str:
        """The OAuth client id."""
        return self._auth.client_id

    @property
    def token_url(self) -> str:
        """The token endpoint (`authorize_url`), redacted."""
        return self._auth.token_url

    @property
    def scope(self) -> str | None:
        """The requested scope, space-separated (the granted one is `Token.scope`)."""
        return self._auth.scope

    async def token(self) -> Token:
        """The current token, fetched first if there is none or it is due for renewal."""
        return await self._auth.token()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} client_id={self.client_id!r} "
            f"token_url={self.token_url!r} closed={self.is_closed}>"
        )
