"""What `cf-http` writes: the response on stdout; `-v`, notes and errors on stderr.

`-v` follows curl: `* ` for what the command does (attempts, retries, delays,
timings), `> ` for each request's line and headers as sent, `< ` for each
response's status line and headers as received (names keep their case).
Credentials are redacted with the library's own functions (`Authorization`
keeps its scheme, cookies, API keys and secret query values are replaced) and
the client secret is scrubbed from every line written to stderr.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

from cf._cli_download import Download, Progress, format_size, write_all
from cf._cli_errors import event_reason
from cf._cli_render import Style, is_json, isatty, pretty_json

if TYPE_CHECKING:
    import httpx

    from cf.infrastructure.http_aio import RetryEvent

__all__ = ["Reporter", "status_line"]


def status_line(response: httpx.Response) -> str:
    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
    return f"{response.http_version} {response.status_code}{reason}"


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")


class Reporter:
    """Everything the command writes, to stdout (bytes) and stderr (text)."""

    def __init__(
        self,
        *,
        stdout: IO[bytes],
        stderr: IO[str],
        verbose: bool = False,
        secret: str | None = None,
        out_style: Style | None = None,
        err_style: Style | None = None,
        pretty: bool | None = None,
        token_url: str | None = None,
    ) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.is_verbose = verbose
        self.secret = secret
        self.out_style = out_style or Style(False)
        self.err_style = err_style or Style(False)
        self.pretty = isatty(stdout) if pretty is None else pretty
        self.token_url = token_url
        self.started = time.monotonic()
        self.attempt_started = self.started
        self.retries = 0  # retries of the request itself (not of token requests)
        self.progress: Progress | None = None  # erased before a line is written
        self.download: Download | None = None  # -o: how much of the body arrived

    # stderr ------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """`text` with the client secret (and every other known secret) redacted as a
        value, never inside ordinary words (`client_secret` stays)."""
        if self.secret:
            from cf._redact import redact_text, register_secret

            register_secret(self.secret, permanent=True)
            text = redact_text(text)
        return text

    def line(self, text: str) -> None:
        """One line on stderr (newlines in `text` become spaces)."""
        if self.progress is not None:
            self.progress.clear()
        self.stderr.write(self.scrub(" ".join(text.splitlines())) + "\n")
        self.stderr.flush()

    def error(self, text: str) -> None:
        """The one failure line: `cf-http: KIND: ...` (the prefix bold red on a terminal)."""
        prefix, sep, rest = text.partition(": ")
        kind, sep2, rest2 = rest.partition(": ")
        if sep and sep2:
            text = f"{prefix}: {self.err_style(kind, 'bold', 'red')}: {rest2}"
        self.line(text)

    def verbose(self, text: str) -> None:
        if self.is_verbose:
            self.line(text)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -v: cf's attempt hooks (each attempt's request and response) and on_retry -----------

    def on_request(self, request: httpx.Request) -> None:
        from cf._redact import redact_headers, redact_url

        self.attempt_started = time.monotonic()
        if not self.is_verbose:
            return
        style = self.err_style
        target = redact_url(_latin1(request.url.raw_path))
        lines = [style(f"{request.method} {target} HTTP/1.1", "bold")]
        lines += [style.header(k, v) for k, v in redact_headers(request.headers.raw)]
        for text in ("* " + style(redact_url(request.url), "dim"), *(f"> {x}" for x in lines), ">"):
            self.line(text)

    def on_response(self, response: httpx.Response) -> None:
        if self.is_verbose:
            for text in self._head_lines(response, self.err_style, redact=True):
                self.line(f"< {text}" if text else "<")

    def on_retry(self, event: RetryEvent) -> None:
        now = time.monotonic()
        took = (now - self.attempt_started) * 1000
        self.attempt_started = now + event.delay
        is_token = self.token_url is not None and event.url == self.token_url
        if not is_token:
            self.retries += 1
        if event.status is not None:
            reason = f"status {event.status}"
        else:
            reason = event_reason(event.exception)
        what = "token request attempt" if is_token else "attempt"
        self.verbose(
            f"* {what} {event.attempt}/{event.max_attempts} failed after {took:.1f} ms "
            f"({reason}); retrying in {event.delay:.3f} s"
        )

    async def aon_request(self, request: httpx.Request) -> None:
        self.on_request(request)

    async def aon_response(self, response: httpx.Response) -> None:
        self.on_response(response)

    def done(self, response: httpx.Response, size: int) -> None:
        attempts = self.retries + 1
        last = (time.monotonic() - self.attempt_started) * 1000
        self.verbose(
            f"* {response.status_code} {response.reason_phrase} after {attempts} "
            f"attempt{'s' if attempts != 1 else ''}, {size} bytes, {self.elapsed():.3f} s "
            f"in all (the last attempt {last:.1f} ms)"
        )

    # stdout ------------------------------------------------------------------------------

    def _head_lines(self, response: httpx.Response, style: Style, *, redact: bool) -> list[str]:
        """The status line and the header lines as received, then an empty line."""
        pairs: Iterable[tuple[str, str]]
        if redact:
            from cf._redact import redact_headers

            pairs = redact_headers(response.headers.raw)
        else:
            pairs = [(_latin1(k), _latin1(v)) for k, v in response.headers.raw]
        lines = [style.status(status_line(response), response.status_code)]
        lines += [style.header(k, v) for k, v in pairs]
        return [*lines, ""]

    def head(self, response: httpx.Response) -> None:
        """`-i` (and `head`): the status line and the headers, then an empty line."""
        text = "\n".join(self._head_lines(response, self.out_style, redact=False)) + "\n"
        write_all(self.stdout, text.encode("latin-1", "replace"))
        self.stdout.flush()

    def body(self, response: httpx.Response) -> None:
        """The body as received; on a terminal a JSON body is re-indented (and coloured),
        and a final newline is added so that the prompt starts on a line of its own."""
        content = response.content
        if b"\0" in content[:65536] and isatty(self.stdout):
            self.line(
                f"cf-http: a binary body ({format_size(len(content))}) is not written to "
                "a terminal; use -o FILE, or -o - to write it anyway"
            )
            return
        if content and self.pretty:
            if is_json(response.headers.get("content-type", "")):
                shown = pretty_json(content, self.out_style)
                if shown is not None:
                    content = shown.encode("utf-8", "replace")
            if not content.endswith(b"\n"):
                content += b"\n"
        write_all(self.stdout, content)
        self.stdout.flush()
