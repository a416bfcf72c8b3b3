"""Page tokens of the admin listings: opaque to callers, the keyset position inside.

Listings are keyset-paginated newest first (``id < last id of the previous page``), so a
page is stable whatever is added meanwhile; the token is base64url of ``n:<last id>``.
"""

from __future__ import annotations

import base64
import binascii
import re

from fleetwire.validators import INT64_MAX
from gateway.errors import InvalidArgument

BAD_PAGE_TOKEN = "pageToken: malformed page token"  # noqa: S105 (a message, not a secret)

_PAGE_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PAGE_TOKEN_BODY = re.compile(r"n:([1-9][0-9]{0,18})")


def encode_page_token(last_id: int) -> str:
    """Opaque to callers: the keyset position (the last id of the page)."""
    return base64.urlsafe_b64encode(f"n:{last_id}".encode()).rstrip(b"=").decode()


def decode_page_token(token: str) -> int | None:
    """The last id of the previous page, or None for the first page."""
    if not token:
        return None
    if not _PAGE_TOKEN.fullmatch(token):
        raise InvalidArgument(BAD_PAGE_TOKEN)
    try:
        body = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(BAD_PAGE_TOKEN) from None
    match = _PAGE_TOKEN_BODY.fullmatch(body)
    if match is None or int(match.group(1)) > INT64_MAX:  # ids are bigint in PostgreSQL
        raise InvalidArgument(BAD_PAGE_TOKEN)
    return int(match.group(1))
