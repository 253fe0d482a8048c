"""Configuration: one Settings object, built once at start from the environment (and a .env file)."""

from __future__ import annotations

import ipaddress
import logging
import re
from functools import cached_property
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Every token setting (a bearer secret a person or script presents) is at least this long; empty means off.
MIN_TOKEN_LENGTH = 24
TOKEN_SETTINGS = ("admin_token", "metrics_token")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}  # a DURATION's units (core/links.py)

# A fixed key for sandbox mode only: sandbox apps hold fixture secrets, nothing real.
SANDBOX_SECRET_KEY = "guildgate-sandbox-mode-only-not-a-secret"


class ConfigError(Exception):
    """A setting is missing or wrong; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GUILDGATE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///guildgate.db"
    redis_url: str | None = None
    discord_api_base: str = "https://discord.com/api/v10"
    discord_authorize_url: str | None = None
    secret_key: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8080"
    admin_token: SecretStr | None = None
    metrics_token: SecretStr | None = None  # set: /metrics asks for Authorization: Bearer <it> (web/ops.py)
    egress_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    # the reverse proxies whose X-Forwarded-For names the client (addresses or CIDRs, comma-separated); from any
    # other peer the header is ignored and the peer's own address is the client's (cli/serving.py)
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    request_timeout: float = Field(default=30.0, gt=0, le=600)
    # seconds a client has to send a whole request (headers and body), counted from the connection or from the
    # request's first byte; past it: 408 and the connection closed (web/readtimeout.py)
    request_read_timeout: float = Field(default=10.0, gt=0, le=600)
    global_rate_limit: int = Field(default=50, ge=1, le=100_000)
    invalid_request_limit: int = Field(default=5000, ge=1, le=10_000)
    # the part of that budget one API key (or the join links, together) may spend (discord/ratelimit/shares.py)
    invalid_request_share: float = Field(default=0.25, gt=0, le=1)
    reads_per_minute: int = Field(default=120, ge=1, le=1_000_000_000)  # per API key: /api/record(s), /api/usage
    guild_joins_per_minute: int = Field(default=0, ge=0, le=1_000_000)  # 0: no cap (Discord's own bucket binds)
    link_joins_per_minute: int = Field(default=60, ge=0, le=1_000_000)  # 0: no cap
    sandbox: bool = False
    log_level: str = "info"
    # grants (workers/grants.py): how often each serve process looks for due grants (seconds); the reminders'
    # offsets before an end (DURATIONs, comma-separated; empty: off); the periodic sync (hours; 0: off)
    grant_sweep_interval: float = Field(default=15.0, gt=0, le=3600)
    grant_remind_before: Annotated[tuple[int, ...], NoDecode] = (3 * 86400,)
    grant_sync_interval: float = Field(default=24.0, ge=0, le=24 * 366)
    # Webhooks (../shared/spec/access.md, "Webhooks"): an attempt's time limit in seconds; the retry schedule
    # (comma-separated seconds, used exactly as given; unset: 5 s … 24 h, about 3 days, with jitter); http:// and
    # any address allowed (development and tests; serve --sandbox sets it); the operator's internal networks
    # (CIDRs, comma-separated) a webhook may reach besides the globally routable addresses
    webhook_timeout: float = Field(default=15.0, gt=0, le=300)
    webhook_retry_schedule: str | None = None
    webhook_allow_insecure: bool = False
    webhook_allow_networks: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("egress_proxies", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(p.strip() for p in value.split(",") if p.strip())
        for proxy in value if isinstance(value, tuple) else ():
            parts = urlsplit(proxy)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"each proxy must be an http(s) URL (http://host:port), got {shown_url(proxy)!r}")
        return value

    @field_validator("grant_remind_before", mode="before")
    @classmethod
    def _offsets(cls, value: object) -> object:
        if isinstance(value, str):
            offsets = []
            for part in (p.strip() for p in value.split(",")):
                if part:
                    match = re.fullmatch(r"([0-9]{1,7})\s*([smhdw])", part)
                    if match is None or int(match.group(1)) == 0:
                        raise ValueError(f"each offset must be a DURATION like 3d, 12h or 30m, got {part!r}")
                    offsets.append(int(match.group(1)) * _UNITS[match.group(2)])
            return tuple(offsets)
        return value

    @field_validator("trusted_proxies", "webhook_allow_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(p.strip() for p in value.split(",") if p.strip())
        for entry in value if isinstance(value, tuple) else ():
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"each entry must be an IP address or a CIDR like 10.0.0.0/8, got {entry[:60]!r}"
                ) from None
        return value

    @field_validator(*TOKEN_SETTINGS, mode="before")
    @classmethod
    def _token(cls, value: object) -> object:
        """Empty (or blank) is off, exactly like unset; a token that is set must be long enough to guess."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if isinstance(raw, str) and len(raw.strip()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"is shorter than {MIN_TOKEN_LENGTH} characters: use a long random value (python -c "
                "'import secrets; print(secrets.token_urlsafe(32))'), or leave it empty to turn this off"
            )
        return raw.strip() if isinstance(raw, str) else value

    @field_validator("discord_api_base", "public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http(s) URL, got {shown_url(value)!r}")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"must start with redis://, rediss:// or unix://, got {shown_url(value)!r}")
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _webhook_schedule(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            from guildgate.core.webhooks import parse_schedule

            parse_schedule(value)
            return value
        return None

    @property
    def webhook_insecure(self) -> bool:
        """http:// and any address allowed for webhooks: GUILDGATE_WEBHOOK_ALLOW_INSECURE as set, and when it is
        not set, sandbox mode (so ``GUILDGATE_WEBHOOK_ALLOW_INSECURE=0`` keeps a sandbox strict)."""
        if "webhook_allow_insecure" in self.model_fields_set:
            return self.webhook_allow_insecure
        return self.sandbox

    @cached_property
    def authorize_url(self) -> str:
        if self.discord_authorize_url:
            return self.discord_authorize_url
        parts = urlsplit(self.discord_api_base)
        return f"{parts.scheme}://{parts.netloc}/oauth2/authorize"

    def secret_key_value(self) -> str:
        if self.secret_key is not None and self.secret_key.get_secret_value():
            key = self.secret_key.get_secret_value()
            if len(key) < 16:
                logging.getLogger("guildgate").warning(
                    "GUILDGATE_SECRET_KEY is shorter than 16 characters; use a long random value"
                )
            return key
        if self.sandbox:
            return SANDBOX_SECRET_KEY
        raise ConfigError(
            "GUILDGATE_SECRET_KEY is not set: it encrypts app secrets at rest and is required outside "
            "sandbox mode (generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )

    @property
    def async_database_url(self) -> str:
        return to_async_url(self.database_url)


def to_async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith("sqlite+aiosqlite:///"):
        return url
    for prefix in ("postgresql://", "postgres://", "postgresql+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    raise ConfigError(f"GUILDGATE_DATABASE_URL must start with sqlite:/// or postgresql://, got {url.split(':')[0]}:…")


def shown_url(url: str) -> str:
    """A URL as an error message may show it: without a password (``user:***@host``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def load_settings(**overrides: object) -> Settings:
    """The settings, or a ConfigError naming each wrong environment variable and what is wrong with it (never
    its value: it may be a secret, or a URL with a password in it; the checks above show what they safely can)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "GUILDGATE_" + "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigError("; ".join(problems)) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
