"""A bounded fuzzing pass over what `cf-http` takes from the command line.

`-H`, the URL (and `--oauth-token-url`), `-u`, `-X`, `--form`, `--data` and
`--json` get arbitrary text: control characters, lone surrogates (bytes the OS
could not decode), separators in odd places. The only outcomes allowed are a
plan that httpx can turn into a request without raising, or a documented usage
error: exit status 2 and one printable line on stderr, never a traceback.
Nothing is sent: `parse()` checks without I/O, and `main()` is only called
with arguments `parse()` refused. The whole file runs in a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import re

import httpx
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cf._cli import EXIT_USAGE, Plan, UsageError, main, parse

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
_PRINTABLE_LINE = re.compile(r"[^\x00-\x1f\x7f-\x9f]*")

# Text with what tends to break parsers mixed in: separators, CR/LF, NUL, escapes,
# lone surrogates (what Python makes of undecodable argv bytes), Unicode line breaks.
_SPECIAL = ":;=@ \t\r\n\x00\x1b\x7f\x85\u2028\udc80\udcff%/?#[]"
# Lists joined, not st.text(): text strategies never produce surrogates.
_CHAR = st.one_of(st.characters(), st.sampled_from(list(_SPECIAL)))
TEXT = st.lists(_CHAR, max_size=40).map("".join)
TOKENISH = st.lists(st.sampled_from([*"aZ9-_.~!", *_SPECIAL]), max_size=12).map("".join)
HOST = st.one_of(
    st.sampled_from(["127.0.0.1", "[::1]", "localhost", "xn--nxasmq6b", "münchen.de", ""]),
    TEXT,
)
URL = st.one_of(
    TEXT,
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "", "http:"]),
        HOST,
        st.sampled_from(["", ":80", ":0", ":65536", ":x", ":-1"]),
        st.one_of(st.just(""), TEXT.map(lambda t: "/" + t)),
    ),
)
GOOD_URL = "http://127.0.0.1:9/x"


def check(argv: list[str]) -> Plan | None:
    """The plan for `argv`, or None after checking the usage error it gets (both ways)."""
    try:
        plan = parse(argv, environ={}, stdin=io.BytesIO(b"{}"), prompt=None)
    except UsageError as exc:
        message = str(exc.args[0])
        assert _PRINTABLE_LINE.fullmatch(message.replace("\udcff", "").replace("\udc80", ""))
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            assert main(argv) == EXIT_USAGE
        lines = stderr.getvalue().splitlines()
        assert len(lines) == 1 and ": error: " in lines[0], lines
        assert _PRINTABLE_LINE.fullmatch(lines[0]), lines[0]
        return None
    # What was accepted must build: no error left for the moment of sending.
    auth = plan.client_options.get("auth")
    request = httpx.Request(plan.method, plan.url, headers=plan.headers, **plan.body)
    if auth is not None:
        next(httpx.BasicAuth(*auth).auth_flow(request))
    request.read()
    return plan


@FUZZ
@given(header=TEXT)
def test_header_argument(header: str) -> None:
    plan = check(["get", GOOD_URL, "-H", header])
    if plan is not None:
        [(name, value)] = plan.headers
        assert name and ":" not in name and b"\r" not in value and b"\n" not in value


@FUZZ
@given(name=TOKENISH, value=TEXT)
def test_header_name_and_value(name: str, value: str) -> None:
    check(["get", GOOD_URL, "-H", f"{name}: {value}"])


@FUZZ
@given(url=URL, token_url=st.one_of(st.none(), URL))
def test_url_arguments(url: str, token_url: str | None) -> None:
    argv = ["get", url]
    if token_url is not None:
        argv += ["--oauth-token-url", token_url, "--oauth-client-id", "id"]
    plan = check(argv)
    if plan is not None:  # only reached without --oauth-token-url: no secret in environ
        parsed = httpx.URL(plan.url)
        assert parsed.scheme in ("http", "https") and parsed.host


@FUZZ
@given(client_id=TEXT, scope=TEXT)
def test_oauth_arguments(client_id: str, scope: str) -> None:
    argv = ["get", GOOD_URL, "--oauth-token-url", GOOD_URL, "--oauth-client-id", client_id]
    try:
        plan = parse([*argv, "--oauth-scope", scope], environ={"CF_HTTP_CLIENT_SECRET": "s"})
    except UsageError as exc:
        assert _PRINTABLE_LINE.fullmatch(str(exc.args[0]).replace("\udcff", ""))
        return
    assert plan.oauth is not None
    for value in (plan.oauth["client_id"], plan.oauth.get("scope", "")):
        value.encode()  # what the token request will encode
        assert not re.search(r"[\x00-\x1f\x7f]", value)


@FUZZ
@given(user=TEXT, method=st.one_of(st.none(), TOKENISH))
def test_user_and_method(user: str, method: str | None) -> None:
    argv = ["get", GOOD_URL, "-u", user]
    if method is not None:
        argv += ["-X", method]
    plan = check(argv)
    if plan is not None:
        assert ":" in user  # without a password there is no terminal to ask on here


@FUZZ
@given(items=st.lists(TEXT, min_size=1, max_size=4))
def test_form_fields(items: list[str]) -> None:
    assume(not any("@/" in item or "@." in item for item in items))  # no reading of real files
    argv = ["post", GOOD_URL]
    for item in items:
        argv += ["--form", item]
    check(argv)


@FUZZ
@given(data=TEXT, as_json=st.booleans())
def test_body_arguments(data: str, as_json: bool) -> None:
    assume(not data.startswith("@") or data == "@-")  # no reading of real files
    check(["post", GOOD_URL, "--json" if as_json else "--data", data])
