"""What `cf-http` writes: the response on stdout, `-v` and errors on stderr, `-o` files.

Kept apart from the argument handling in `cf/_cli.py`. The client secret is
scrubbed from everything written to stderr; URLs in `-v` lines go through the
library's redacting log filter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from cf.infrastructure.http_aio import RetryEvent

__all__ = ["EXIT_ERROR", "Download", "Failure", "Reporter"]

EXIT_ERROR = 1


class Failure(Exception):
    """An error reported as one line on stderr with its exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Reporter:
    """Everything written to stderr and stdout; the secret is scrubbed from stderr."""

    def __init__(
        self,
        *,
        stdout: IO[bytes],
        stderr: IO[str],
        target: str,
        include: bool = False,
        verbose: bool = False,
        secret: str | None = None,
    ) -> None:
        self.include = include
        self.secret = secret
        self.stdout = stdout
        self.stderr = stderr
        self.started = time.monotonic()
        self.attempt = 0
        self.sent_at: dict[int, float] = {}
        self.last_sent = 0.0
        self.logger: logging.Logger | None = None
        self.target = target  # the URL as httpx writes it, to tell attempts from token requests
        if verbose:
            from cf.loggingutils import get_logger

            self.logger = get_logger("cf.cli")  # its filter redacts URLs and credentials
            self.logger.propagate = False
            self.logger.setLevel(logging.INFO)
            handler = logging.StreamHandler(stderr)
            handler.setFormatter(_ScrubbingFormatter(secret))
            self.logger.handlers[:] = [handler]

    def scrub(self, text: str) -> str:
        if self.secret:
            text = text.replace(self.secret, "[redacted]")
        return text

    def line(self, text: str) -> None:
        """One line on stderr."""
        self.stderr.write(self.scrub(" ".join(text.splitlines())) + "\n")
        self.stderr.flush()

    def verbose(self, text: str, *args: object) -> None:
        if self.logger is not None:
            self.logger.info(text, *args)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -v: cf's DEBUG record of every attempt, and on_retry (every retry) ----------------

    def watch_attempts(self) -> None:
        """Show each attempt from cf's per-attempt DEBUG records (the API call and the
        token requests alike)."""
        handler = _AttemptHandler(self)
        for name in ("cf.infrastructure.http_aio", "cf.infrastructure.http"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)

    def on_attempt(self, record: logging.LogRecord) -> None:
        phase = getattr(record, "phase", None)
        if phase is None:
            return
        elapsed = getattr(record, "elapsed", None) or 0.0
        url = getattr(record, "url", "")
        if phase == "start":
            self.last_sent = time.monotonic()
            if url == self.target:
                self.attempt += 1
                self.verbose("> attempt %d: %s %s", self.attempt, record.method, url)  # type: ignore[attr-defined]
            else:  # the token endpoint, or a redirect
                self.verbose("> %s %s", record.method, url)  # type: ignore[attr-defined]
        elif phase == "response":
            self.verbose(
                "< %s %d %s in %.1f ms",
                record.http_version,  # type: ignore[attr-defined]
                record.status,  # type: ignore[attr-defined]
                record.reason,  # type: ignore[attr-defined]
                elapsed * 1000,
            )

    def on_retry(self, event: RetryEvent) -> None:
        if event.status is not None:
            reason = f"status {event.status}"
        else:  # no response: say how long the attempt lasted
            reason = f"{type(event.exception).__name__}: {event.exception}".rstrip(": ")
            if self.last_sent:
                reason += f", after {(time.monotonic() - self.last_sent) * 1000:.1f} ms"
        self.verbose(
            "! attempt %d/%d failed (%s); retrying in %.3f s",
            event.attempt,
            event.max_attempts,
            reason,
            event.delay,
        )

    # The response --------------------------------------------------------------------

    def head(self, response: httpx.Response) -> None:
        if not self.include:
            return
        lines = [f"{response.http_version} {response.status_code} {response.reason_phrase}"]
        lines += [f"{name}: {value}" for name, value in response.headers.multi_items()]
        self.stdout.write(("\n".join(lines) + "\n\n").encode("utf-8", "replace"))

    def body(self, response: httpx.Response) -> None:
        content = response.content
        if content and _isatty(self.stdout):
            if "json" in response.headers.get("content-type", ""):
                try:
                    pretty = json.dumps(json.loads(content), indent=2, ensure_ascii=False)
                    content = pretty.encode()
                except ValueError:
                    pass
            if not content.endswith(b"\n"):
                content += b"\n"
        self.stdout.write(content)
        self.stdout.flush()

    def done(self, response: httpx.Response, size: int) -> None:
        attempts = max(self.attempt, 1)
        self.verbose(
            "* %d %s after %d attempt%s, %d bytes, %.3f s in all",
            response.status_code,
            response.reason_phrase,
            attempts,
            "s" if attempts != 1 else "",
            size,
            self.elapsed(),
        )


class _AttemptHandler(logging.Handler):
    """Hands cf's per-attempt records to the reporter."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.DEBUG)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self.reporter.on_attempt(record)


class _ScrubbingFormatter(logging.Formatter):
    def __init__(self, secret: str | None) -> None:
        super().__init__("%(message)s")
        self._secret = secret

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(self._secret, "[redacted]") if self._secret else text


def _isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Download:
    """`-o FILE`: chunks go to a temporary file renamed over FILE once the body is complete.

    A special file (`/dev/null`, a FIFO) is written in place. The progress bar
    is drawn on stderr only when stderr is a terminal.
    """

    def __init__(self, path: str, response: httpx.Response, stderr: IO[str]) -> None:
        self.path = path
        self.size = 0
        encoded = "content-encoding" in response.headers
        length = response.headers.get("content-length", "")
        self.total = int(length) if length.isdigit() and not encoded else None
        self.stderr = stderr if _isatty(stderr) else None
        self.drawn = 0.0
        self.temp: str | None = None
        try:
            if os.path.exists(path) and not os.path.isfile(path):
                self.file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in finish()
            else:
                directory, name = os.path.split(os.path.abspath(path))
                fd, self.temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
                os.fchmod(fd, _file_mode(path))
                self.file = os.fdopen(fd, "wb")
        except OSError as exc:
            raise self._error(exc) from None

    def _error(self, exc: OSError) -> Failure:
        return Failure(f"cannot write {self.path}: {exc.strerror or exc}", EXIT_ERROR)

    def write(self, chunk: bytes) -> None:
        try:
            self.file.write(chunk)
        except OSError as exc:
            raise self._error(exc) from None
        self.size += len(chunk)
        if self.stderr is not None and time.monotonic() - self.drawn >= 0.1:
            self._draw()

    def _draw(self, final: bool = False) -> None:
        assert self.stderr is not None
        self.drawn = time.monotonic()
        if self.total:
            share = min(self.size / self.total, 1.0)
            bar = "#" * int(share * 30)
            text = f"{share:4.0%} [{bar:<30}] {_size(self.size)} / {_size(self.total)}"
        else:
            text = f"{_size(self.size)}"
        self.stderr.write(f"\r{text}" + ("\n" if final else ""))
        self.stderr.flush()

    def finish(self, ok: bool) -> None:
        """Close the file; keep it (`ok`) or remove the partial temporary file."""
        if self.stderr is not None:
            self._draw(final=True)
        try:
            self.file.close()
            if self.temp is not None and ok:
                os.replace(self.temp, self.path)
        except OSError as exc:
            ok = False
            raise self._error(exc) from None
        finally:
            if self.temp is not None and not ok:
                with contextlib.suppress(OSError):
                    os.unlink(self.temp)


def _file_mode(path: str) -> int:
    """The existing file's permissions, else the usual ones for a new file (0666 & ~umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
