"""Public modules of cf: http_aio (async), http (sync), backoff, tracer."""

__all__: list[str] = []
