"""The webhooks' rules without I/O: the retry schedule, Retry-After's bound, secrets, the settings' checks."""

from __future__ import annotations

import base64

import pytest

from guildgate.core.webhooks import DEFAULT_SCHEDULE, new_endpoint_id, new_secret, parse_schedule, retry_delay
from guildgate.settings import ConfigError, load_settings


def test_the_default_schedule_is_about_three_days_with_jitter_within_20_percent() -> None:
    assert DEFAULT_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert 2.9 * 86400 < sum(DEFAULT_SCHEDULE) < 3.2 * 86400
    for tries, step in enumerate(DEFAULT_SCHEDULE, start=1):
        delays = {
            retry_delay(tries=tries, schedule=DEFAULT_SCHEDULE, jitter=True, status=500, retry_after=None)
            for _ in range(50)
        }
        assert all(d is not None and 0.8 * step <= d <= 1.2 * step for d in delays)
        assert len(delays) > 1  # at random: a cohort does not retry in lockstep
    assert retry_delay(tries=10, schedule=DEFAULT_SCHEDULE, jitter=True, status=500, retry_after=None) is None


def test_a_schedule_given_is_used_exactly() -> None:
    schedule = parse_schedule("1, 2.5,60")
    assert schedule == (1.0, 2.5, 60.0)
    got = [retry_delay(tries=n, schedule=schedule, jitter=False, status=500, retry_after=None) for n in (1, 2, 3, 4)]
    assert got == [1.0, 2.5, 60.0, None]
    for bad in ("", "1,x", "0", "-5", "1,,abc"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


def test_retry_after_on_429_and_503_is_honoured_up_to_twice_the_step() -> None:
    schedule = (10.0, 100.0)
    assert retry_delay(tries=1, schedule=schedule, jitter=False, status=429, retry_after="15") == 15.0
    assert retry_delay(tries=1, schedule=schedule, jitter=False, status=503, retry_after="3600") == 20.0
    assert retry_delay(tries=1, schedule=schedule, jitter=False, status=503, retry_after="2") == 2.0
    assert retry_delay(tries=1, schedule=schedule, jitter=False, status=500, retry_after="15") == 10.0
    assert retry_delay(tries=1, schedule=schedule, jitter=False, status=429, retry_after="soon") == 10.0


def test_a_secret_is_whsec_and_the_standard_padded_base64_of_32_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    encoded = secret.removeprefix("whsec_")
    assert len(base64.b64decode(encoded, validate=True)) == 32 and encoded.endswith("=")
    assert new_secret() != secret
    endpoint_id = new_endpoint_id()
    assert endpoint_id.startswith("whe_") and len(endpoint_id) == 20 and int(endpoint_id[4:], 16) >= 0


def test_bad_webhook_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="GUILDGATE_WEBHOOK_RETRY_SCHEDULE"):
        load_settings(webhook_retry_schedule="5,soon")
    with pytest.raises(ConfigError, match="GUILDGATE_WEBHOOK_ALLOW_NETWORKS"):
        load_settings(webhook_allow_networks="10.0.0.0/8,intranet")
    with pytest.raises(ConfigError, match="GUILDGATE_WEBHOOK_TIMEOUT"):
        load_settings(webhook_timeout=0)
    assert load_settings(sandbox=True).webhook_insecure
    assert not load_settings(sandbox=False).webhook_insecure


def test_an_explicit_allow_insecure_wins_over_sandbox_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """``GUILDGATE_WEBHOOK_ALLOW_INSECURE=0`` keeps a sandbox strict (an operator trying the guard locally);
    unset, sandbox mode allows http:// and any address."""
    monkeypatch.setenv("GUILDGATE_SANDBOX", "1")
    monkeypatch.setenv("GUILDGATE_WEBHOOK_ALLOW_INSECURE", "0")
    assert not load_settings().webhook_insecure
    monkeypatch.setenv("GUILDGATE_WEBHOOK_ALLOW_INSECURE", "1")
    assert load_settings(sandbox=False).webhook_insecure
    monkeypatch.delenv("GUILDGATE_WEBHOOK_ALLOW_INSECURE")
    assert load_settings().webhook_insecure
