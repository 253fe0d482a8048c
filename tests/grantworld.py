"""A sandbox world for the grants tests: the suite's WORLD plus servers of a test's own (fresh ids each time, so
that grants other tests left in the shared database never overlap with a test's own), each with the apps' bots
allowed to manage roles and kick, three roles below the bot's, and bob and carol as members."""

from __future__ import annotations

import copy
import itertools
import random
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import APP_A, APP_B, SECRETS, USER_IDS, WORLD, Sandbox

BOB, CAROL, ALICE = USER_IDS["bob"], USER_IDS["carol"], USER_IDS["alice"]
_NEXT = itertools.count(random.randrange(10**9) * 100)


@dataclass(frozen=True)
class Server:
    id: str
    roles: tuple[str, str, str]  # three roles the bot may give and take (below its own)
    high: str  # a role above the bot's: giving it is refused (50013)


def new_server() -> Server:
    base = 1_240_000_000_000_000_000 + next(_NEXT) * 10
    return Server(id=str(base), roles=(str(base + 1), str(base + 2), str(base + 3)), high=str(base + 4))


def world_with(*servers: Server, members: tuple[str, ...] = (BOB, CAROL)) -> dict[str, Any]:
    world = copy.deepcopy(WORLD)
    for server in servers:
        world["guilds"].append(
            {
                "id": server.id,
                "name": f"Grants {server.id[-6:]}",
                "bots": {
                    APP_A: ["CREATE_INSTANT_INVITE", "MANAGE_ROLES", "KICK_MEMBERS"],
                    APP_B: ["CREATE_INSTANT_INVITE", "MANAGE_ROLES", "KICK_MEMBERS"],
                },
                "roles": [
                    *({"id": role, "name": f"tier{i}", "position": i + 1} for i, role in enumerate(server.roles)),
                    {"id": server.high, "name": "staff", "position": 10},
                ],
                "bot_role_position": 5,
                "members": list(members),
            }
        )
    return world


def servers(sandbox: Sandbox, count: int = 1) -> list[Server]:
    made = [new_server() for _ in range(count)]
    sandbox.reset(world_with(*made))
    return made


def roles_at(sandbox: Sandbox, server: Server, user_id: str) -> set[str]:
    member = sandbox.member(server.id, user_id)
    assert member is not None, f"{user_id} is not in {server.id}"
    return set(member["roles"])


def removals(sandbox: Sandbox, server: Server, user_id: str, role: str) -> int:
    return int(sandbox.stats().get("role_removals", {}).get(f"{server.id}/{user_id}/{role}", 0))


def no_secret_in(text: str) -> None:
    leaked = [s for s in SECRETS if s and s in text]
    assert not leaked, "a secret appeared in an answer"


def call(
    url: str, method: str, path: str, key: str, *, json: Any = None, params: dict[str, Any] | None = None
) -> httpx.Response:
    headers = {"User-Token": key, "Accept-Language": "en"}
    response = httpx.request(method, url + path, headers=headers, json=json, params=params, timeout=60)
    no_secret_in(response.text)
    return response
