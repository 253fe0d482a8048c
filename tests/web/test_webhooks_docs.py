"""docs/webhooks.md stays true: its receiver example, run as the page shows it (a program of its own on
127.0.0.1), verifies a real signed delivery from ``serve``, refuses a tampered one, and applies a replay once;
the page's Python check and its openssl recipe verify a real delivery too (the recipe when openssl is here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import APP_A, ROOT, SECRETS, Gateway, Sandbox, cli, one_worker_gateway
from tests.servers import free_port
from tests.webhook_receiver import Receiver

PAGE = ROOT / "docs" / "webhooks.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks(lang: str) -> list[str]:
    return [code for found, code in FENCE.findall(PAGE.read_text()) if found == lang]


@pytest.fixture(scope="module")
def hooked(session_dir: Path, sandbox: Sandbox) -> Iterator[Gateway]:
    home = session_dir / "webhooks-docs"
    home.mkdir(exist_ok=True)
    gateway = one_worker_gateway(
        home, sandbox, "webhooks-docs", GUILDGATE_WEBHOOK_ALLOW_INSECURE="1", GUILDGATE_WEBHOOK_RETRY_SCHEDULE="0.2"
    )
    yield gateway
    gateway.proc.stop()


def add(gateway: Gateway, url: str) -> dict[str, str]:
    out = cli(["webhooks", "add", "--app", APP_A, "--url", url, "--event", "join.succeeded", "--json"], env=gateway.env)
    made = dict(json.loads(out.stdout))
    SECRETS.add(made["secret"])
    return made


def test_the_receiver_example_verifies_a_real_delivery_and_applies_a_replay_once(
    hooked: Gateway, tmp_path: Path
) -> None:
    (receiver_code,) = [code for code in blocks("python") if "HTTPServer" in code]
    assert len(receiver_code.strip().splitlines()) <= 30
    port = free_port()
    endpoint = add(hooked, f"http://127.0.0.1:{port}/")
    env = {**os.environ, "WEBHOOK_SECRET": endpoint["secret"], "PORT": str(port)}
    log = tmp_path / "receiver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", receiver_code], env=env, cwd=tmp_path, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until the receiver listens
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        test = json.loads(cli(["webhooks", "test", endpoint["id"], "--json"], env=hooked.env).stdout)
        event_id = test["event_id"]

        def printed() -> int:
            return log.read_text().count(f"webhook.test {event_id}")

        wait(lambda: printed() == 1, "the receiver to print the test event")
        wait(lambda: delivered(hooked, endpoint["id"], 1), "the delivery's 204 in webhooks deliveries")
        cli(["webhooks", "replay", event_id], env=hooked.env)
        wait(lambda: delivered(hooked, endpoint["id"], 2), "the replay's 204")
        assert printed() == 1  # the replay was recognised by its webhook-id and applied once
        tampered = httpx.post(
            f"http://127.0.0.1:{port}/",
            content=b'{"id":"' + event_id.encode() + b'","type":"webhook.test","data":{}}',
            headers={
                "webhook-id": event_id,
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,AAAA",
            },
        )
        assert tampered.status_code == 400
    finally:
        proc.kill()
        proc.wait()


def delivered(gateway: Gateway, endpoint_id: str, n: int) -> bool:
    out = cli(["webhooks", "deliveries", endpoint_id, "--json"], env=gateway.env).stdout
    return [a["status"] for a in json.loads(out)["attempts"]].count(204) >= n


def wait(what: object, about: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout} s for {about}")


def test_the_python_check_and_the_openssl_recipe_verify_a_real_delivery(hooked: Gateway, tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        endpoint = add(hooked, receiver.url("/doc"))
        event_id = json.loads(cli(["webhooks", "test", endpoint["id"], "--json"], env=hooked.env).stdout)["event_id"]
        message = receiver.wait(lambda: receiver.got("/doc"), about="the test event")[0]
    finally:
        receiver.close()
    assert message.id == event_id
    # the page's Python check
    (check,) = [code for code in blocks("python") if "def verified" in code]
    namespace: dict[str, object] = {}
    exec(check.replace('"whsec_..."', repr(endpoint["secret"])), namespace)  # noqa: S102 - the page's own code
    event = namespace["verified"](message.body, message.headers)  # type: ignore[operator]
    assert event["id"] == event_id  # type: ignore[index]
    # the openssl recipe, with a right and then a wrong body
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the recipe is not run")
    (recipe,) = [code for code in blocks("sh") if "openssl dgst" in code]
    recipe = recipe.replace("secret=whsec_...", f"secret={endpoint['secret']}")
    env = {
        **os.environ,
        "WEBHOOK_ID": message.headers["webhook-id"],
        "WEBHOOK_TIMESTAMP": message.headers["webhook-timestamp"],
        "WEBHOOK_SIGNATURE": message.headers["webhook-signature"],
    }
    (tmp_path / "body.json").write_bytes(message.body)
    ok = subprocess.run(["bash", "-c", recipe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and ok.stdout.strip() == "verified", ok.stdout + ok.stderr
    (tmp_path / "body.json").write_bytes(message.body.replace(b"webhook.test", b"webhook.tesT"))
    bad = subprocess.run(["bash", "-c", recipe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "bad signature" in bad.stdout
