"""What the Flask, Django and FastAPI helpers share: the token, the public URL, the body limit, the
order of the checks, the refusal log line and the HTTP status.

Every helper runs the same steps (docs/contract.md, web helpers), each in its own framework's idiom:

1. no ``X-Twilio-Signature`` -> 400, before the body is read;
2. a ``Host`` holding a comma -> 400: several hosts (WSGI servers and Django join repeated Host
   lines with a comma, and the ASGI helpers join an ASGI scope's list the same way); a ``Host`` (or
   believed ``X-Forwarded-Host``) with ``/ ? # @ \\``, whitespace or a control character -> 400; a
   believed ``X-Forwarded-Proto`` other than ``http``/``https`` -> 400;
3. no usable token -> :class:`MissingTokenError` (500), logged at ERROR;
4. a declared ``Content-Length`` over ``max_body_bytes`` -> 413 unread; a streamed body is read to at
   most ``max_body_bytes + 1`` bytes -> 413 past the limit;
5. a non-empty body verified as a form (its URL has no ``bodySHA256``) whose ``Content-Type`` is not
   ``application/x-www-form-urlencoded`` -> 415 (:meth:`Guard.check_content_type`): the signature
   covers the decoded form, and a framework that parses the body by its type (multipart) would hand
   the app fields that were never signed;
6. verify: 403 on a bad signature (400 only for the missing header).

Each refusal is one WARNING line on ``twilio_signature.<framework>``:
``twilio webhook refused: <status> <reason>; url=<url>; <diagnosis>``, plus, when the request carried
forwarding headers that were not believed, ``; X-Forwarded-Proto, ... ignored: from <peer>, not in
trusted_proxies`` (and what rewrote the peer address, when that can be seen).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlencode, urlsplit

from twilio_signature._native import MissingSignatureError, SignatureError, Validator, Verified

TOKEN_SETTING = "TWILIO_AUTH_TOKEN"
DEFAULT_MAX_BODY_BYTES = 1 << 20
"""The body limit of every helper unless ``max_body_bytes`` says otherwise: 1 MiB."""

_HOST_FORBIDDEN = frozenset("/?#@\\,\x7f")
_ASCII_WHITESPACE = " \t\n\r\x0c"
_MAX_LENGTH_DIGITS = 19
"""The digits of the largest Content-Length taken as a number (2**63 - 1 has 19)."""

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FORM_TYPE = "application/x-www-form-urlencoded"
_FORWARDING_HEADERS = ("X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "Forwarded")
"""The headers a proxy uses to say what the public URL was, in the order a refusal line names them."""


class PublicUrl(str):
    """The URL a request is verified against, carrying what a refusal line adds about it: the
    forwarding headers that were present but not believed (``ignored``), or ``""``."""

    ignored: str = ""


class MissingTokenError(RuntimeError):
    """No usable Auth Token is configured: the app would otherwise accept nothing (or everything)."""


class Refusal(Exception):
    """A refused request: the helper turns it into its framework's response with ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def bad_host(host: str) -> bool:
    """Whether ``host`` could move the verified URL: empty, or any of ``/ ? # @ \\``, whitespace or a
    control character (0x00-0x20, 0x7f); or is several hosts (a comma, which no host has)."""
    return not host or any(c <= " " or c in _HOST_FORBIDDEN for c in host)


def parse_networks(entries: Iterable[str] | None) -> tuple[IpNetwork, ...]:
    """``trusted_proxies`` as networks: ``"10.0.0.0/8"``, ``"::1/128"``, or a bare address (one host).
    A string is one entry, not a list of characters; a malformed entry is a ``ValueError`` now rather
    than a proxy silently never trusted."""
    if entries is None:
        return ()
    if isinstance(entries, str):
        entries = [entries]
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _address(remote_addr: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not remote_addr:
        return None
    try:
        address = ipaddress.ip_address(remote_addr.strip("[]").split("%", 1)[0])
    except ValueError:
        return None  # a Unix socket path or the like: no proxy address to trust
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def last_value(lines: Sequence[str]) -> str | None:
    """The entry the nearest proxy added to a forwarding header: the last item of the last line."""
    if not lines:
        return None
    # ASCII whitespace only, as the tower layer trims: str.strip() would also drop NBSP or NEL.
    return lines[-1].rsplit(",", 1)[-1].strip(_ASCII_WHITESPACE) or None


def _unsafe(c: str) -> bool:
    """A character a log line must not carry as it is: a C0 or C1 control (0x00-0x1f, 0x7f-0x9f;
    NEL, 0x85, can come from a URL byte the framework decodes as latin-1) or U+2028/U+2029, on which
    log tools (and ``str.splitlines``) split lines."""
    return c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029"


def printable(text: str) -> str:
    """``text`` with control characters and line separators escaped (``\\x85``, ``\\u2028``), so a
    hostile header or URL cannot forge or split log lines."""
    if not any(_unsafe(c) for c in text):
        return text
    return "".join(
        (f"\\x{ord(c):02x}" if c <= "\xff" else f"\\u{ord(c):04x}") if _unsafe(c) else c for c in text
    )


def _http_scheme(scheme: str) -> bool:
    """``http`` or ``https`` in any ASCII case (``str.lower`` alone would also fold non-ASCII
    look-alikes)."""
    return scheme.isascii() and scheme.lower() in ("http", "https")


def _diagnosis(explanation: str) -> str:
    """The lines of ``Validator.explain`` after its verdict line, as one line."""
    lines = [line.strip() for line in explanation.splitlines() if line.strip()]
    rest = lines[1:] if lines and lines[0].startswith("invalid:") else lines
    return " ".join(rest) or "no common mistake explains it: check the token and the URL Twilio calls"


class Guard:
    """The options of one decorator, middleware or dependency, and the validators it built.

    :param framework: names the logger, ``twilio_signature.<framework>``.
    :param token: the Auth Token; by default the framework setting or environment variable
        ``TWILIO_AUTH_TOKEN``, read at request time.
    :param base_url: the public origin Twilio calls (``https://example.com``, or with a mount prefix):
        replaces the scheme, host and mount point the server sees.
    :param trusted_proxies: networks (``"10.0.0.0/8"``, ``"::1"``) of reverse proxies whose
        ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are believed (the last value: the nearest
        proxy's). Ignored for requests from any other address.
    :param trust_proxy: believe those headers from any address (the app is reachable only through
        the proxy).
    :param max_body_bytes: the largest body read (default 1 MiB); larger ones get 413.
    """

    def __init__(
        self,
        framework: str,
        *,
        token: str | None = None,
        base_url: str | None = None,
        trusted_proxies: Iterable[str] | None = None,
        trust_proxy: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 0:
            raise ValueError("max_body_bytes must be a non-negative int")
        self.logger = logging.getLogger(f"twilio_signature.{framework}")
        self.token = token
        self.base_url = _check_base_url(base_url)
        self._base_path = urlsplit(self.base_url).path if self.base_url else ""
        self._route_warned = False
        self.trusted_proxies = parse_networks(trusted_proxies)
        self.trust_proxy = trust_proxy
        self.max_body_bytes = max_body_bytes
        self._validators: dict[str, Validator] = {}
        self._lock = threading.Lock()

    # -- step 3: the token -------------------------------------------------------------------------

    def validator(self, configured: str | None, url: str) -> Validator:
        """The validator for the configured token; :class:`MissingTokenError` (logged with ``url``)
        without a usable one."""
        token = self.token or configured or os.environ.get(TOKEN_SETTING)
        validator = self._validators.get(token) if token else None
        if validator is not None:
            return validator
        problem = None
        if not isinstance(token, str) or not token:
            problem = f"{TOKEN_SETTING} is not set"
        else:
            try:
                validator = Validator(token)
            except ValueError as error:  # whitespace only, or not encodable; never carries the token
                problem = f"{TOKEN_SETTING} is not usable ({error})"
        if validator is None or token is None:
            message = f"{problem}: set it (app config or environment) to verify Twilio webhooks"
            self.logger.error(
                "twilio webhook refused: 500 %s; url=%s; set %s to the account's Auth Token",
                problem,
                printable(url),
                TOKEN_SETTING,
            )
            # Raised outside the except block: no __context__ that could hold the token.
            raise MissingTokenError(message) from None
        with self._lock:
            return self._validators.setdefault(token, validator)

    # -- steps 1 and 2: the signature header and the URL ---------------------------------------------

    def public_url(
        self,
        *,
        scheme: str,
        host: str,
        target: str,
        prefix: str,
        remote_addr: str | None,
        header: Callable[[str], Sequence[str]],
        peer_rewritten: Callable[[], str | None] | None = None,
        websocket: bool = False,
    ) -> PublicUrl:
        """The URL Twilio requested, after the signature-header and host checks (:class:`Refusal`).

        ``target`` is the raw request target (path and query, as sent) and ``prefix`` the mount point it
        is relative to (stripped when ``base_url`` is set); ``header`` returns every line of a request
        header. ``peer_rewritten`` says, when the server replaced the peer address with a forwarded
        one (uvicorn's proxy_headers, Werkzeug's ProxyFix), what did it: a refusal line names it.
        ``websocket`` (a WebSocket handshake, rule R5): Twilio signs the ``wss://`` URL when the
        public scheme is https, ``ws://`` when it is http; ``scheme`` is then ``http`` or ``https``.
        """
        believed = self.trust_proxy or self._trusted(remote_addr)
        ignored = "" if believed else self._ignored(remote_addr, header, peer_rewritten)
        if believed:
            forwarded_proto = last_value(header("X-Forwarded-Proto"))
            scheme = forwarded_proto or scheme
            forwarded_host = last_value(header("X-Forwarded-Host"))
        else:
            forwarded_proto = forwarded_host = None
        if self.base_url is not None:
            path = target[len(prefix) :] if prefix and target.startswith(prefix) else target
            url = PublicUrl(self.base_url + path)
            self._warn_route_in_base_url(path, url)
        else:
            url = PublicUrl(f"{scheme}://{forwarded_host or host}{target}")
        if websocket:
            url = PublicUrl(_websocket_url(url))
        url.ignored = ignored
        if not header("X-Twilio-Signature"):
            raise self.missing_signature(url)
        if "," in host:
            # Several hosts, or one Host line holding a comma (no host has one): WSGI servers join
            # repeated Host lines with a comma, and the ASGI helpers join a scope's list so too. The URL
            # would take one and the app could read another (RFC 9112 section 3.2).
            raise self.refuse(
                400,
                f"the Host header {printable(repr(host))} is more than one host",
                url,
                "servers join repeated Host lines with a comma; a request has one Host, and Twilio sends one",
            )
        for name, value in (("Host", host), ("X-Forwarded-Host", forwarded_host)):
            if value is not None and bad_host(value):
                raise self.refuse(
                    400,
                    f"the {name} header {printable(repr(value))} is not a host",
                    url,
                    "a host with / ? # @ \\, whitespace or control characters could move the URL",
                )
        # The scheme goes into the URL as sent (as the tower layer does): only http or https, in any
        # ASCII case. Without base_url only: with it, the forwarded scheme plays no part.
        if self.base_url is None and forwarded_proto is not None and not _http_scheme(forwarded_proto):
            raise self.refuse(
                400,
                "the X-Forwarded-Proto header is not http or https",
                url,
                "check what the trusted proxy sends",
            )
        return url

    def missing_signature(self, url: str) -> Refusal:
        return self.refuse(
            400,
            "the X-Twilio-Signature header is missing",
            url,
            "the request was not sent by Twilio (or a proxy dropped the header)",
        )

    def _trusted(self, remote_addr: str | None) -> bool:
        if not self.trusted_proxies:
            return False
        address = _address(remote_addr)
        return address is not None and any(address in network for network in self.trusted_proxies)

    def _ignored(
        self,
        remote_addr: str | None,
        header: Callable[[str], Sequence[str]],
        peer_rewritten: Callable[[], str | None] | None,
    ) -> str:
        """The refusal line's note on forwarding headers that were sent but not believed (rule R3),
        or ``""`` when there were none."""
        present = [name for name in _FORWARDING_HEADERS if header(name)]
        if not present:
            return ""
        names = ", ".join(present)
        if not self.trusted_proxies:
            note = f"{names} ignored: no trusted_proxies configured"
        else:
            note = f"{names} ignored: from {remote_addr or 'an unknown peer'}, not in trusted_proxies"
        rewritten = peer_rewritten() if peer_rewritten is not None else None
        return f"{note} {rewritten}" if rewritten else note

    def _warn_route_in_base_url(self, path: str, url: str) -> None:
        """Logs once per helper when ``base_url``'s path overlaps the request path (rule R4): its last
        k segments are the request path's first k (``https://h/twilio/sms`` serving ``/twilio/sms``
        verifies ``https://h/twilio/sms/twilio/sms``)."""
        if self._route_warned or not self._base_path.strip("/"):
            return
        request_path = path.split("?", 1)[0]
        base = [segment for segment in self._base_path.split("/") if segment]
        route = [segment for segment in request_path.split("/") if segment]
        overlap = next(
            (k for k in range(min(len(base), len(route)), 0, -1) if base[-k:] == route[:k]),
            0,
        )
        if not overlap:
            return
        self._route_warned = True
        self.logger.warning(
            'base_url "%s" ends with "%s", which the request path "%s" starts with: the URL verified '
            'is "%s". Give base_url as the public origin plus only the mount prefix the app does not '
            "see (usually just the origin).",
            printable(self.base_url or ""),
            printable("/" + "/".join(base[-overlap:])),
            printable(request_path),
            printable(url),
        )

    # -- step 4: the body limit ----------------------------------------------------------------------

    def check_declared_length(self, content_length: str | None, url: str) -> int | None:
        """The declared ``Content-Length`` (None if absent); :class:`Refusal` 400 if malformed, 413 if
        over the limit — before any byte is read."""
        if content_length is None or content_length == "":
            return None
        if not content_length.isdigit() or not content_length.isascii():
            raise self.refuse(400, "the Content-Length header is not a number", url, "")
        # Leading zeros are no size; more than 19 digits is past any limit (and int() of thousands of
        # digits raises Python's int-string-limit ValueError: a 500, not a 413).
        digits = content_length.lstrip("0")
        if len(digits) > _MAX_LENGTH_DIGITS:
            raise self.too_large(url)
        length = int(digits or "0")
        if length > self.max_body_bytes:
            raise self.too_large(url)
        return length

    def too_large(self, url: str) -> Refusal:
        return self.refuse(
            413,
            f"the body is larger than max_body_bytes ({self.max_body_bytes})",
            url,
            "Twilio's webhooks are small; raise max_body_bytes if yours really are larger",
        )

    def read_limited(self, read: Callable[[int], bytes], url: str) -> bytes:
        """Reads a stream to its end, refusing (413) once more than ``max_body_bytes`` arrive: at most
        ``max_body_bytes + 1`` bytes are ever read."""
        chunks = []
        size = 0
        while True:
            chunk = read(min(65536, self.max_body_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self.too_large(url)
        return b"".join(chunks)

    # -- step 5: the content type -------------------------------------------------------------------

    def check_content_type(self, url: str, body_length: int, content_types: Sequence[str]) -> None:
        """Rule R1: :class:`Refusal` 415 unless the body is empty, covered by the URL's
        ``bodySHA256``, or sent as ``application/x-www-form-urlencoded`` (parameters such as
        ``charset`` allowed, the type compared ASCII-case-insensitively). ``content_types`` holds
        every ``Content-Type`` line of the request (several lines are refused: which one would the
        framework parse by?)."""
        if body_length == 0 or has_body_sha256(url):
            return
        # An empty value is no type (Werkzeug's and Django's environ hold "" for a missing header).
        content_types = [value for value in content_types if value.strip(_ASCII_WHITESPACE)]
        received = content_types[0] if len(content_types) == 1 else None
        if received is not None and media_type(received) == FORM_TYPE:
            return
        if not content_types:
            what = "no content type"
        elif received is None:
            what = f"{len(content_types)} Content-Type headers"
        else:
            what = f'unsupported content type "{printable(media_type(received))}"'
        raise self.refuse(
            415,
            f"{what} for a form body",
            url,
            "Twilio sends form webhooks as application/x-www-form-urlencoded; a body verified as a form "
            "must carry that type",
        )

    # -- step 6: verify --------------------------------------------------------------------------------

    def verify(
        self, validator: Validator, url: str, body: bytes, signature: str | None, settings: str | None
    ) -> Verified:
        """The verified request, or :class:`Refusal` (logged with the ``explain`` diagnosis)."""
        try:
            return validator.verify(url, body, signature, settings)
        except SignatureError as error:
            diagnosis = _diagnosis(validator.explain(url, body, signature, settings))
            raise self.refuse(status_for(error), str(error), url, diagnosis) from None

    def verify_params(
        self,
        validator: Validator,
        url: str,
        pairs: list[tuple[str, str]],
        signature: str | None,
        settings: str | None,
    ) -> Verified:
        """:meth:`verify` for a form the framework already parsed (the signature covers the decoded
        pairs, so re-encoding them for the diagnosis gives the same pairs)."""
        try:
            return validator.verify_params(url, pairs, signature, settings)
        except SignatureError as error:
            diagnosis = _diagnosis(validator.explain(url, urlencode(pairs), signature, settings))
            raise self.refuse(status_for(error), str(error), url, diagnosis) from None

    def refuse(self, status: int, reason: str, url: str, diagnosis: str) -> Refusal:
        """Logs one refusal (never the token, never the expected signature) and returns it to raise.
        A :class:`PublicUrl` adds its note on ignored forwarding headers."""
        ignored = getattr(url, "ignored", "")
        self.logger.warning(
            "twilio webhook refused: %d %s; url=%s; %s%s",
            status,
            reason.rstrip("."),
            printable(url),
            printable(diagnosis),
            f"; {printable(ignored)}" if ignored else "",
        )
        return Refusal(status, reason)


def _check_base_url(base_url: str | None) -> str | None:
    if not base_url:
        return None
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            "base_url must be the public origin (and mount prefix) Twilio calls, such as "
            "'https://example.com' or 'https://example.com/app', with no query or fragment"
        )
    if bad_host(parts.netloc.rsplit("@", 1)[-1]) or "?" in base_url or "#" in base_url:
        raise ValueError("base_url has a malformed host")
    return base_url.rstrip("/")


def uvicorn_peer_note(client_host: str | None, forwarded_for: Sequence[str]) -> str | None:
    """For a refusal line (rule R3) under an ASGI server: uvicorn (``proxy_headers``, on by default,
    for peers in ``forwarded_allow_ips``) replaces the client address with an ``X-Forwarded-For``
    entry and keeps no record of the original; when the address the app sees is one of that header's
    entries, that is what happened."""
    entries = {entry.strip(_ASCII_WHITESPACE) for line in forwarded_for for entry in line.split(",")}
    if client_host is None or client_host not in entries:
        return None
    return (
        f"(the peer address {client_host} came from X-Forwarded-For: uvicorn's proxy_headers rewrote "
        "it; trust the original proxy with forwarded_allow_ips, or turn proxy_headers off)"
    )


def _websocket_url(url: str) -> str:
    """``url`` with the WebSocket scheme Twilio signs a handshake with: https -> wss, http -> ws (any
    ASCII case); another scheme (a refused X-Forwarded-Proto) is left for the check that refuses it."""
    scheme, separator, rest = url.partition("://")
    if not separator or not _http_scheme(scheme):
        return url
    return ("wss" if scheme.lower() == "https" else "ws") + "://" + rest


def _tokens(lines: Sequence[str]) -> set[str]:
    return {token.strip(_ASCII_WHITESPACE).lower() for line in lines for token in line.split(",")}


def is_websocket_upgrade(method: str, header: Callable[[str], Sequence[str]]) -> bool:
    """Rule R5: an HTTP/1.1 ``GET`` with ``Upgrade: websocket`` and a ``Connection`` header holding
    the token ``upgrade`` (ASCII-case-insensitive). (An ASGI server hands such a request, and an
    HTTP/2 extended CONNECT, to the app as a ``websocket`` scope.)"""
    return (
        method == "GET"
        and "websocket" in _tokens(header("Upgrade"))
        and "upgrade" in _tokens(header("Connection"))
    )


def websocket_scheme_as_http(scheme: str) -> str:
    """The HTTP scheme of an ASGI ``websocket`` scope's ``ws``/``wss`` (uvicorn's proxy headers may
    already have made it ``wss``)."""
    return {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme)


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value: before the first ``;``, ASCII whitespace trimmed,
    ASCII letters lower-cased (``str.lower`` alone would fold non-ASCII look-alikes into ASCII)."""
    text = content_type.split(";", 1)[0].strip(_ASCII_WHITESPACE)
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in text)


def has_body_sha256(url: str) -> bool:
    """Whether the URL's query has a ``bodySHA256`` parameter, as the core finds it (the raw name,
    with ``=`` or nothing after it, before any fragment): then the body is checked by its hash."""
    query = url.split("#", 1)[0].partition("?")[2]
    return any(pair == "bodySHA256" or pair.startswith("bodySHA256=") for pair in query.split("&"))


def status_for(error: SignatureError) -> int:
    """400 when the request carries no signature at all, 403 when it carries a bad one."""
    return 400 if isinstance(error, MissingSignatureError) else 403
