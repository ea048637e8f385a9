"""`-o FILE`: the body streamed to a temporary file renamed over FILE once complete,
and the progress bar drawn on stderr while it arrives.

The temporary file (`.FILE.XXXX.part`, in FILE's directory so the rename is
atomic) is removed whatever ends the download early: an error, Ctrl-C, SIGTERM
or SIGHUP (the command turns those into exceptions that pass through here). A
special file (`/dev/null`, a FIFO) and `-o -` (stdout) are written in place.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO

from cf._cli_errors import EXIT_ERROR

__all__ = ["Download", "Failure", "Progress", "format_size", "write_all"]

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class Failure(Exception):
    """An error reported as one line on stderr with its exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def write_all(stream: IO[bytes], data: bytes) -> None:
    """Write every byte of `data`: a buffered write into a pipe whose reader went away
    returns a short count first and raises `BrokenPipeError` only on the next write."""
    view = memoryview(data)
    while view:
        written = stream.write(view)
        if not written:
            raise BrokenPipeError("the reader of stdout went away")
        view = view[written:]


def format_size(n: float) -> str:
    """`512 B`, `1.5 KiB`, `2.9 MiB`, `1.2 GiB`."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A one-line progress bar: share, bar, size, rate and time left.

    Every frame starts with a carriage return and ends by erasing to the end of
    the line, and is cut to the terminal's width, so no frame leaves characters
    of a longer one behind and none wraps. `finish()` writes the final line
    (size, time, mean rate) and a newline; `clear()` erases the bar, e.g. before
    an error line.
    """

    interval = 0.1  # seconds between frames

    def __init__(
        self,
        stream: IO[str],
        total: int | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        width: Callable[[], int] | None = None,
    ) -> None:
        self.stream = stream
        self.total = total
        self.clock = clock
        self.width = width or (lambda: _terminal_width(stream))
        self.started = clock()
        self.drawn_at: float | None = None
        self.visible = False

    def update(self, size: int) -> None:
        now = self.clock()
        if self.drawn_at is None or now - self.drawn_at >= self.interval:
            self.drawn_at = now
            self._write("\r" + self._fit(self.frame(size, now)) + "\x1b[K")

    def frame(self, size: int, now: float) -> str:
        elapsed = now - self.started
        rate = f"{format_size(size / elapsed)}/s" if elapsed > 0 and size else "--- B/s"
        if not self.total:
            return f"{format_size(size)}  {rate}"
        share = min(size / self.total, 1.0)
        left = (self.total - size) * elapsed / size if size else None
        eta = f"  {_duration(left)} left" if left is not None else ""
        bar = "#" * int(share * 30)
        return (
            f"{share:4.0%} [{bar:<30}] {format_size(size)} / {format_size(self.total)}  {rate}{eta}"
        )

    def final(self, size: int, now: float) -> str:
        elapsed = now - self.started
        rate = f", {format_size(size / elapsed)}/s" if elapsed > 0 else ""
        took = f"{elapsed:.2f} s" if elapsed < 60 else _duration(elapsed)
        head = f"100% [{'#' * 30}] " if self.total else ""
        return f"{head}{format_size(size)} in {took}{rate}"

    def finish(self, size: int) -> None:
        self._write("\r" + self._fit(self.final(size, self.clock())) + "\x1b[K\n")
        self.visible = False

    def clear(self) -> None:
        if self.visible:
            self._write("\r\x1b[K")
            self.visible = False

    def _fit(self, text: str) -> str:
        return text[: max(self.width() - 1, 10)]

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
        self.visible = True


def _terminal_width(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while the file is renamed or removed."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    except (AttributeError, OSError, ValueError):  # not the main thread, or no pthreads
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Download:
    """Chunks of the body go to a temporary file, renamed over `path` when complete."""

    def __init__(
        self,
        path: str,
        total: int | None,
        progress: Progress | None = None,
        stdout: IO[bytes] | None = None,
    ) -> None:
        self.path = path
        self.total = total
        self.size = 0
        self.progress = progress
        self.temp: str | None = None
        try:
            if path == "-":
                assert stdout is not None
                self.file: IO[bytes] = stdout
            elif os.path.exists(path) and not os.path.isfile(path):
                self.file = open(path, "wb")  # noqa: SIM115 - closed in finish()
            else:
                directory, name = os.path.split(os.path.abspath(path))
                fd, self.temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
                try:
                    os.fchmod(fd, _file_mode(path))
                    self.file = os.fdopen(fd, "wb")
                except BaseException:
                    os.close(fd)
                    os.unlink(self.temp)
                    raise
        except OSError as exc:
            raise self._error(exc) from None
        if progress is not None:
            progress.update(0)

    def _error(self, exc: OSError) -> Failure:
        shown = "stdout" if self.path == "-" else self.path
        return Failure(f"cannot write {shown}: {exc.strerror or exc}", EXIT_ERROR)

    def write(self, chunk: bytes) -> None:
        try:
            write_all(self.file, chunk)
            if self.path == "-":
                self.file.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._error(exc) from None
        self.size += len(chunk)
        if self.progress is not None:
            self.progress.update(self.size)

    def finish(self, ok: bool) -> None:
        """Close the file; keep it (`ok`) or remove the partial temporary file."""
        with _signals_held():
            try:
                if self.path != "-":
                    self.file.close()
                if self.temp is not None and ok:
                    os.replace(self.temp, self.path)
                    self.temp = None
            except OSError as exc:
                ok = False
                raise self._error(exc) from None
            finally:
                if self.temp is not None and not ok:
                    with contextlib.suppress(OSError):
                        os.unlink(self.temp)
                if self.progress is not None:
                    if ok:
                        self.progress.finish(self.size)
                    else:
                        self.progress.clear()

    @property
    def cut_short(self) -> bool:
        """True when fewer bytes arrived than the Content-Length announced."""
        return self.total is not None and self.size < self.total


def _file_mode(path: str) -> int:
    """The existing file's permissions, else the usual ones for a new file (0666 & ~umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
