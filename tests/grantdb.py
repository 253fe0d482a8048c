"""Reading a gateway's grants from its own database, and acting on them as its operator would (the grants
service in a process of its own, with the gateway's settings): for tests of what joins and links do to grants."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from guildgate.core.grants import Grant
from guildgate.store.db import Database
from guildgate.store.grants import GrantRepo
from guildgate.store.models import GrantRow
from tests.conftest import Gateway


def grants_of(gateway: Gateway, user_id: str) -> list[Grant]:
    """Every grant of ``user_id`` in the gateway's database, newest first."""

    async def read() -> list[Grant]:
        db = Database(gateway.env["GUILDGATE_DATABASE_URL"])
        try:
            found, _ = await GrantRepo(db).page(
                app_id=None, where=[GrantRow.user_id == user_id], cursor=None, limit=500
            )
        finally:
            await db.dispose()
        return found

    return asyncio.run(read())


_OPERATOR = """
import asyncio, json, sys
from guildgate.cli.common import db_settings
from guildgate.services.runtime import Services

async def main(what, arg, settings):
    svc = Services.build(settings)
    try:
        if what == "end":
            result = await svc.grants.end(app=None, app_id=None, grant_id=arg)
            print(json.dumps(result.grant.as_json()))
        else:
            summary = await svc.grants.sync(guild_id=arg)
            print(json.dumps(vars(summary)))
    finally:
        await svc.close()

asyncio.run(main(sys.argv[1], sys.argv[2], db_settings()))
"""


def operator(gateway: Gateway, what: str, arg: str) -> dict[str, object]:
    """``end GRANT_ID`` (now, revoked) or ``sync GUILD_ID``, through GrantService in a process of its own."""
    run = subprocess.run(
        [sys.executable, "-c", _OPERATOR, what, arg], env=gateway.env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))
