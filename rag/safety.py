"""Making text safe to show: terminal control codes stripped, credentials in URLs masked.

Documents come from the web and settings come from the environment, so anything the CLI prints
may carry a terminal escape sequence (clear the screen, retitle the window, rewrite a line) or an
endpoint URL with a password or key in it. Imports nothing of the package."""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Whole escape sequences first (so `\x1b[2J` leaves nothing behind, not "[2J"): CSI ... final byte,
# OSC/DCS/PM/APC/SOS ... up to BEL or ST, then two-byte escapes; the 8-bit C1 forms as well.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x20-\x3f]*[\x40-\x7e]?"  # CSI
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"  # other escapes (charset switches, keypad modes, RIS)
)
# Left after that: C0 controls but tab and newline, DEL, C1 controls, and the bidirectional
# overrides/isolates that make text display in an order other than the one it is stored in.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Characters a JSON line may hold raw (json.dumps with ensure_ascii=False) that a terminal may act on.
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

# Query parameters whose values are secrets (api-key, key, token, access_token, sig, password, ...).
_SECRET_PARAM = re.compile(r"key|token|secret|passw|pwd|auth|credential|session|signature|^sig$|^code$", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^\s/?#@\"'<>]*)@", re.I)
# `user:password@host` written without a scheme (a CHROMA_HOST, say); not `mailto:someone@`.
_BARE_USERINFO = re.compile(r"(?<![\w.+%/:-])(?!mailto:)[\w.%~+-]+:[^\s/?#@\"'<>:]+@(?=[\w\[])", re.I)
_QUERY_SECRET = re.compile(r"(?P<lead>[?&;](?P<name>[\w.~%-]+)=)(?P<value>[^&#;\s\"'<>]*)")


def clean_text(text: object) -> str:
    """`text` with escape sequences and control characters removed; newlines and tabs kept, a
    carriage return (which lets a line overwrite what was printed) becomes a newline."""
    s = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", s))


def clean_line(text: object) -> str:
    """clean_text on one line: newlines and tabs become spaces (titles, file names, reasons)."""
    return re.sub(r"[\n\t\v\f\u2028\u2029]+", " ", clean_text(text)).strip()


def json_safe(line: str) -> str:
    """A json.dumps(..., ensure_ascii=False) line with the characters a terminal may act on
    (DEL, C1 controls, bidirectional overrides, line separators, lone surrogates) written as
    \\uXXXX escapes: the same JSON value, harmless on a terminal. (json.dumps escapes C0 itself.)"""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def mask_url(url: Optional[str]) -> Optional[str]:
    """A URL to show: `user:password@` becomes `***@` and secret query values (`api-key=`, `key=`,
    `token=`, `sig=` ...) become `***`. Anything that does not parse as a URL is masked as text."""
    if url is None:
        return None
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return mask_credentials(str(url))
    if not parts.scheme or not parts.netloc:
        return mask_credentials(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _is_secret(k) and v else v) for k, v in pairs], safe="*")
    return mask_credentials(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def mask_credentials(text: object) -> str:
    """Every URL-looking credential in free text masked: userinfo before `@` and secret query values."""
    s = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@" if m.group("userinfo") else m.group(), str(text))
    s = _BARE_USERINFO.sub(f"{MASK}@", s)
    return _QUERY_SECRET.sub(
        lambda m: f"{m.group('lead')}{MASK}" if _is_secret(m.group("name")) and m.group("value") else m.group(), s)


def _is_secret(name: str) -> bool:
    return bool(_SECRET_PARAM.search(name))


def show(text: object) -> str:
    """What the CLI prints of a setting or an error: credentials masked, control codes stripped."""
    return clean_text(mask_credentials(text))
