"""Discord JSON error code -> outcome: the one table.

Discord answers refusals with ``{"message": ..., "code": N}``. The HTTP status alone is not enough (10004
and 50001 both mean "the bot cannot see this guild", 50025 and 50026 both mean "this token is not good for
this join"), so outcomes are decided by the JSON code first, then by the status.
"""

from __future__ import annotations

import re
from typing import Final

from guildgate.core.errors import DiscordRefusedError
from guildgate.core.outcomes import Outcome
from guildgate.core.text import is_control
from guildgate.discord.routes import GET_CURRENT_USER, GET_INVITE, Route

CODE_OUTCOMES: Final[dict[int, Outcome]] = {
    10004: Outcome.UNKNOWN_GUILD,
    10006: Outcome.UNKNOWN_INVITE,
    10007: Outcome.NOT_A_MEMBER,  # Unknown Member: the bot's member calls (grants); a join never meets it
    50001: Outcome.BOT_NOT_IN_GUILD,
    50013: Outcome.BOT_MISSING_PERMISSIONS,
    40007: Outcome.BANNED,
    30001: Outcome.MAX_GUILDS,
    50025: Outcome.INVALID_OAUTH_TOKEN,
    50026: Outcome.INVALID_OAUTH_TOKEN,
}


def refusal(status: int, body: object, *, route: Route) -> DiscordRefusedError:
    """Turn a Discord 4xx answer into the matching DiscordRefusedError error.

    ``route`` matters for 401: on Get Current User it means the user's token is expired or invalid; elsewhere
    (a Bot call) it means the operator's bot token is wrong, which is passed through as ``discord_error``.
    """
    code: int | None = None
    message = f"{status}: Discord refused the request"
    if isinstance(body, dict):
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        raw_message = discord_text(body.get("message"), limit=300)
        if raw_message:
            message = raw_message
    if code is not None and code in CODE_OUTCOMES:
        outcome = CODE_OUTCOMES[code]
    elif status == 401 and route == GET_CURRENT_USER:
        outcome = Outcome.TOKEN_EXPIRED
    elif status == 404 and route == GET_INVITE:
        outcome = Outcome.UNKNOWN_INVITE
    else:
        outcome = Outcome.DISCORD_ERROR
    return DiscordRefusedError(message, outcome=outcome, discord_status=status, discord_code=code)


_SPACES = re.compile(" {2,}")


def discord_text(raw: object, *, limit: int = 200) -> str | None:
    """A name from one of Discord's answers (a server's, a role's, an application's) as it may be stored and
    shown: control characters (a NUL, which PostgreSQL's text cannot hold; line breaks) become spaces, runs of
    spaces one, cut to ``limit`` characters. None for anything that is not a string."""
    if not isinstance(raw, str):
        return None
    if not raw.isprintable():
        raw = "".join(" " if is_control(c) else c for c in raw)
        raw = _SPACES.sub(" ", raw).strip()
    return raw[:limit]
