"""HTTPAioPool: one client whose connection limit is the pool size."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["HTTPAioPool"]


class _Closable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class HTTPAioPool(Generic[C]):
    """A pool of `size` connections behind one client.

    `async with pool.item() as client:` hands out that client; callers beyond
    `size` requests in flight wait for a free connection, bounded by the pool
    timeout (`httpx.Timeout(pool=...)`).
    """

    def __init__(self, client: C, size: int) -> None:
        self._client = client
        self.size = size

    def item(self) -> _Item[C]:
        """`async with pool.item() as client`: the pool's client."""
        return _Item(self._client)

    @property
    def client(self) -> C:
        """The pool's one client (what `item()` hands out)."""
        return self._client

    async def aclose(self) -> None:
        """Close the pool's client and every connection it holds."""
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} size={self.size} client={self._client!r}>"


class _Item(Generic[C]):
    __slots__ = ("_client",)

    def __init__(self, client: C) -> None:
        self._client = client

    async def __aenter__(self) -> C:
        return self._client

    async def __aexit__(self, *exc_info: Any) -> None:
        return None
