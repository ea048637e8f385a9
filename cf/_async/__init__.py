"""The hand-written async client code; cf/_sync is generated from it."""

from cf._async._client import HTTPAio
from cf._async._pool import HTTPAioPool

__all__ = ["HTTPAio", "HTTPAioPool"]
