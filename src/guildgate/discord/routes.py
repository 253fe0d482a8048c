"""Every Discord call guildgate makes, declared once: method, path template and major parameter.

A ``Route`` builds the call's path (each parameter percent-encoded as one path segment), names it for logs,
metrics and the refusal table (``"PUT /guilds/{guild_id}/members/{user_id}"``), and says which parameter splits
its rate-limit buckets (Discord's *major parameter*: ``guild_id``, ``channel_id`` or ``webhook_id``, the first one
in the template), so that no caller passes a major or spells a path by hand.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

MAJOR_PARAMETERS: Final = ("guild_id", "channel_id", "webhook_id")
_UNRESERVED: Final = re.compile(r"[A-Za-z0-9_.~-]+")  # what urllib's quote(safe="") never changes


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str  # e.g. "/guilds/{guild_id}/members/{user_id}"
    name: str = field(init=False, compare=False)  # "METHOD template": logs, metrics, the refusal table
    params: tuple[str, ...] = field(init=False, compare=False, repr=False)  # the template's parameters, in order
    major: str | None = field(init=False, compare=False, repr=False)  # the parameter that splits its buckets

    def __post_init__(self) -> None:
        params = tuple(name for _, name, _, _ in string.Formatter().parse(self.template) if name)
        object.__setattr__(self, "name", f"{self.method} {self.template}")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "major", next((p for p in params if p in MAJOR_PARAMETERS), None))

    def path(self, params: dict[str, str]) -> str:
        """The path with every parameter as one percent-encoded segment (an id with a slash stays in its place).
        Raises KeyError for a missing parameter, ValueError for one the template does not have."""
        if len(params) != len(self.params):
            extra = set(params) - set(self.params)
            if extra:
                raise ValueError(f"{self.name} has no parameter {sorted(extra)[0]}")
        if not self.params:
            return self.template
        return self.template.format(**{name: _segment(params[name]) for name in self.params})

    def major_value(self, params: dict[str, str]) -> str:
        """The major parameter's value ("" for a route without one): part of the rate-limit bucket key."""
        return params[self.major] if self.major is not None else ""


def _segment(value: str) -> str:
    """A path parameter as one path segment: percent-encoded unless it is all unreserved characters (a
    snowflake, an invite code), which quoting leaves as they are."""
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


GET_CURRENT_USER: Final = Route("GET", "/users/@me")
GET_INVITE: Final = Route("GET", "/invites/{invite_code}")
GET_CURRENT_APPLICATION: Final = Route("GET", "/applications/@me")
GET_CURRENT_APPLICATION_OLD: Final = Route("GET", "/oauth2/applications/@me")  # an API without the route above
GET_GUILD: Final = Route("GET", "/guilds/{guild_id}")
ADD_GUILD_MEMBER: Final = Route("PUT", "/guilds/{guild_id}/members/{user_id}")
GET_GUILD_MEMBER: Final = Route("GET", "/guilds/{guild_id}/members/{user_id}")
ADD_GUILD_MEMBER_ROLE: Final = Route("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}")
REMOVE_GUILD_MEMBER_ROLE: Final = Route("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}")
REMOVE_GUILD_MEMBER: Final = Route("DELETE", "/guilds/{guild_id}/members/{user_id}")
TOKEN_EXCHANGE: Final = Route("POST", "/oauth2/token")
TOKEN_REVOKE: Final = Route("POST", "/oauth2/token/revoke")

ALL: Final = (
    GET_CURRENT_USER,
    GET_INVITE,
    GET_CURRENT_APPLICATION,
    GET_CURRENT_APPLICATION_OLD,
    GET_GUILD,
    ADD_GUILD_MEMBER,
    GET_GUILD_MEMBER,
    ADD_GUILD_MEMBER_ROLE,
    REMOVE_GUILD_MEMBER_ROLE,
    REMOVE_GUILD_MEMBER,
    TOKEN_EXCHANGE,
    TOKEN_REVOKE,
)
