"""core.doctor.diagnose in this process, through DiscordLookups against the sandbox."""

from __future__ import annotations

import time

from guildgate.core.doctor import Report, diagnose
from tests.conftest import APP_A, APP_B, GUILD, GUILD_NOPERMS, ROLE_HIGH, ROLE_LOW
from tests.core.conftest import Core


async def doctor(core: Core, guild_id: str, *roles: str, app: str = APP_A) -> Report:
    return await diagnose(
        core.lookups, app=await core.app(app), guild_id=guild_id, roles=list(roles), deadline=time.monotonic() + 10
    )


def failed(report: Report) -> dict[str, str | None]:
    return {c.name: c.fix for c in report.checks if not c.ok}


async def test_a_bot_with_every_permission_passes(core: Core) -> None:
    report = await doctor(core, GUILD, ROLE_LOW)
    assert report.ok, report.checks
    assert report.guild is not None and report.guild.name == "Test Server"
    assert [c.name for c in report.checks] == [
        "bot token",
        "application",
        "bot in server",
        "Create Invite",
        "Manage Roles",
        "role member",
    ]


async def test_a_missing_create_invite_permission_is_found_with_its_fix(core: Core) -> None:
    report = await doctor(core, GUILD_NOPERMS)
    assert not report.ok
    fix = failed(report)["Create Invite"]
    assert fix is not None and "turn on Create Invite" in fix


async def test_roles_need_manage_roles(core: Core) -> None:
    report = await doctor(core, GUILD, ROLE_LOW, app=APP_B)
    assert list(failed(report)) == ["Manage Roles"]


async def test_a_role_above_the_bots_is_found(core: Core) -> None:
    report = await doctor(core, GUILD, ROLE_HIGH)
    problems = failed(report)
    assert list(problems) == ["role admin"]
    assert "drag" in (problems["role admin"] or "")


async def test_a_server_without_the_bot_says_how_to_invite_it(core: Core) -> None:
    report = await doctor(core, "1200000000000000003")
    assert report.guild is None
    fix = failed(report)["bot in server"]
    assert fix is not None and f"client_id={APP_A}" in fix
