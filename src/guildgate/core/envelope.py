"""The join API's answer, as the server writes it (web/errors.py) and the client reads it (client/_wire.py):
one definition of its fields, which web/api/schemas.py also turns into the OpenAPI document's ``Envelope``."""

from __future__ import annotations

from typing import Final, NotRequired, TypedDict


class _Always(TypedDict):
    status: int
    msg: str
    id: str | None
    data: str | None
    cost: str
    code: str


class Envelope(_Always, total=False):
    """Every answer of the join call, and every error of the API outside /api/admin; ``discord_code`` only on a
    Discord refusal."""

    discord_code: int | None


class JoinedData(TypedDict):
    """A join's ``data`` on success, JSON-encoded into the envelope's ``data`` string (the contract)."""

    id: str | None
    name: str | None
    user_id: str | None
    joined: bool
    grant_id: NotRequired[str | None]  # when the request asked for a grant: the one the join made or renewed


ENVELOPE_FIELDS: Final[dict[str, str]] = {
    "status": "1 success, 0 failure",
    "msg": "Human text, zh by default, en by Accept-Language",
    "id": "The record id (UUID)",
    "data": "On success a JSON-encoded string: " + ", ".join(JoinedData.__annotations__),
    "cost": "Wall time, e.g. '182.40ms'",
    "code": "Stable outcome code",
    "discord_code": "Discord's JSON error code, on Discord failures",
}
"""What each of Envelope's fields holds, for the OpenAPI document."""
