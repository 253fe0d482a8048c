"""core.doctor.diagnose in this process, through DiscordLookups against the sandbox."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from guildgate.core.doctor import Report, diagnose
from guildgate.core.grants import OnEnd
from tests.conftest import APP_A, APP_B, GUILD, GUILD_NOPERMS, ROLE_HIGH, ROLE_LOW, WORLD, base_env, cli
from tests.core.conftest import Core


async def doctor(core: Core, guild_id: str, *roles: str, app: str = APP_A, kick: bool = False) -> Report:
    return await diagnose(
        core.lookups,
        app=await core.app(app),
        guild_id=guild_id,
        roles=list(roles),
        deadline=time.monotonic() + 10,
        kick=kick,
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


async def test_an_end_with_kick_needs_kick_members_and_says_how_to_grant_it(core: Core) -> None:
    """The fixture's bot may give roles but not kick: asked about access that ends with a kick, the doctor fails
    Kick Members (a warning: people still get in), with the fix; asked about an end that removes roles, it
    passes."""
    assert (await doctor(core, GUILD, ROLE_LOW)).ok
    report = await doctor(core, GUILD, ROLE_LOW, kick=True)
    assert list(failed(report)) == ["Kick Members"]
    kick = next(c for c in report.checks if c.name == "Kick Members")
    assert not kick.blocks and kick.fix is not None and "turn on Kick Members" in kick.fix
    assert "end_failed" in kick.fix and "remove_roles" in kick.fix


async def test_a_bot_that_may_kick_passes_the_kick_check(core: Core) -> None:
    world = copy.deepcopy(WORLD)
    world["guilds"][0]["bots"][APP_A].append("KICK_MEMBERS")
    core.sandbox.reset(world)
    report = await doctor(core, GUILD, ROLE_LOW, kick=True)
    assert report.ok, report.checks
    assert [c.name for c in report.checks][-2:] == ["Kick Members", "role member"]


async def test_the_cli_checks_kick_members_for_on_end_kick_and_for_a_link_that_ends_with_a_kick(
    core: Core, database_url: str, tmp_path: Path
) -> None:
    """``guildgate doctor --on-end kick`` and ``guildgate doctor --link ID`` (the link's own on_end) fail the check
    with exit 1 and the fix; the same link ending with role removal passes."""
    env = base_env(tmp_path, GUILDGATE_DATABASE_URL=database_url, GUILDGATE_DISCORD_API_BASE=core.sandbox.api)
    plain = cli(["doctor", "--app", APP_A, "--guild", GUILD, "--role", ROLE_LOW, "--json"], env=env)
    assert json.loads(plain.stdout)["ok"] is True
    kick = cli(["doctor", "--app", APP_A, "--guild", GUILD, "--on-end", "kick"], env=env, check=False)
    assert kick.returncode == 1 and "Kick Members" in kick.stdout and "turn on Kick Members" in kick.stdout
    assert "ends with a kick will fail (end_failed)" in kick.stdout and "joins through" not in kick.stdout
    bad = cli(["doctor", "--app", APP_A, "--guild", GUILD, "--on-end", "ban"], env=env, check=False)
    assert bad.returncode == 2 and "on_end" in bad.stderr
    kicking = await core.links.create(
        app_id=APP_A, guild_id=GUILD, guild_name=None, guild_icon=None, roles=[], title=None, max_uses=None,
        expires_at=None, access_for="2w", on_end=OnEnd.KICK,
    )  # fmt: skip
    by_link = cli(["doctor", "--link", kicking.id, "--json"], env=env, check=False)
    assert by_link.returncode == 1, by_link.stderr
    checks = {c["name"]: c for c in json.loads(by_link.stdout)["checks"]}
    assert checks["Kick Members"]["ok"] is False and "turn on Kick Members" in checks["Kick Members"]["fix"]
    link = await core.links.create(
        app_id=APP_A, guild_id=GUILD, guild_name=None, guild_icon=None, roles=[], title=None, max_uses=None,
        expires_at=None, access_for="2w", on_end=OnEnd.REMOVE_ROLES,
    )  # fmt: skip
    removing = cli(["doctor", "--link", link.id, "--json"], env=env)
    assert "Kick Members" not in {c["name"] for c in json.loads(removing.stdout)["checks"]}
    both = cli(["doctor", "--link", link.id, "--app", APP_A], env=env, check=False)
    assert both.returncode == 2 and "not both" in both.stderr
    unknown = cli(["doctor", "--link", "lnk_missing"], env=env, check=False)
    assert unknown.returncode == 2 and "link" in unknown.stderr
