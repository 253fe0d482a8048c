"""docs/client.md stays true: each of its Python examples runs, as a program of its own, against a real
guildgate, and prints exactly the output the page shows under it."""

from __future__ import annotations

import os
import re
import subprocess

from tests.conftest import BIN, ROOT, TOKENS, Gateway, Sandbox

PAGE = ROOT / "docs" / "client.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def examples() -> list[tuple[str, str]]:
    """Each python block with the text block right after it (what it prints)."""
    blocks = FENCE.findall(PAGE.read_text())
    return [
        (code, blocks[i + 1][1])
        for i, (lang, code) in enumerate(blocks)
        if lang == "python" and i + 1 < len(blocks) and blocks[i + 1][0] == "text"
    ]


def test_the_examples_print_what_the_page_shows(gateway: Gateway, fresh: Sandbox) -> None:
    found = examples()
    assert len(found) == sum(lang == "python" for lang, _ in FENCE.findall(PAGE.read_text())) == 4
    # The secrets come from the environment, as the page says: never in argv.
    env = {
        **os.environ,
        "GUILDGATE_URL": gateway.proc.url,
        "GUILDGATE_API_KEY": gateway.keys["a"],
        "USER_TOKEN": TOKENS["alice"],
    }
    for code, shown in found:  # in the page's order: the later ones find alice already in the server
        run = subprocess.run(
            [str(BIN / "python"), "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout == shown
