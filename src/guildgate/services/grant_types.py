"""The values the grant service takes and gives (``services/grants.py`` re-exports them): the ``UNSET``
sentinel, a call's result, the list's filters, and the checks that turn a bad field into ``invalid_request``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

from guildgate.core.errors import InvalidRequestError
from guildgate.core.grants import Grant, GrantState, check_external_ref, check_roles


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""An argument left out (``ends_at=UNSET``), as opposed to ``None`` (``ends_at=None``: open-ended)."""


@dataclass(frozen=True)
class GrantResult:
    grant: Grant
    created: bool = False  # a new grant (HTTP 201); False: an existing one was updated or answered as it is
    stale: bool = False  # the call's ``as_of`` was older than the grant's: nothing was changed


@dataclass(frozen=True)
class GrantFilters:
    guild_id: str | None = None
    user_id: str | None = None
    state: GrantState | None = None
    external_ref: str | None = None
    ends_before: datetime | None = None
    updated_since: datetime | None = None
    link_id: str | None = None
    absent: bool | None = None  # True: only absent members' grants; False: only present ones


def checked_roles(roles: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return check_roles(roles)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None


def checked_ref(ref: str) -> str:
    try:
        return check_external_ref(ref)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
