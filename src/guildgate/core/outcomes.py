"""The one outcome table: code, envelope status, HTTP status and the zh/en messages."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RecordState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


class Source(StrEnum):
    API = "api"
    LINK = "link"


@dataclass(frozen=True, slots=True)
class _Row:
    status: int
    http: int
    zh: str
    en: str


class Outcome(StrEnum):
    """Every answer the join API can give. ``{detail}`` and ``{retry}`` are filled in when rendering."""

    JOINED = "joined"
    ALREADY_MEMBER = "already_member"
    TOKEN_EXPIRED = "token_expired"
    INVALID_OAUTH_TOKEN = "invalid_oauth_token"
    UNKNOWN_INVITE = "unknown_invite"
    UNKNOWN_GUILD = "unknown_guild"
    BOT_NOT_IN_GUILD = "bot_not_in_guild"
    BOT_MISSING_PERMISSIONS = "bot_missing_permissions"
    BANNED = "banned"
    MAX_GUILDS = "max_guilds"
    DISCORD_ERROR = "discord_error"
    DISCORD_UNAVAILABLE = "discord_unavailable"
    RATE_LIMITED = "rate_limited"
    INVALID_API_KEY = "invalid_api_key"
    INVALID_REQUEST = "invalid_request"
    NOT_AN_OAUTH_TOKEN = "not_an_oauth_token"
    PROXY_NOT_ALLOWED = "proxy_not_allowed"
    QUOTA_EXCEEDED = "quota_exceeded"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    VELOCITY_CAPPED = "velocity_capped"
    INVALID_REQUEST_SHARE_EXCEEDED = "invalid_request_share_exceeded"
    # The record API only (GET /api/record, /api/records, /api/usage):
    READ_QUOTA_EXCEEDED = "read_quota_exceeded"
    # Join links only (records with source "link"; the join API never answers these):
    CANCELLED = "cancelled"
    LINK_EXPIRED = "link_expired"
    LINK_USED_UP = "link_used_up"
    LINK_DISABLED = "link_disabled"
    # Grants (access.md, "Grants"):
    UNKNOWN_GRANT = "unknown_grant"
    GRANT_ENDED = "grant_ended"
    NOT_A_MEMBER = "not_a_member"
    ACCESS_ENDED = "access_ended"
    EXTERNAL_REF_TAKEN = "external_ref_taken"
    # Webhooks (endpoints and the event log):
    UNKNOWN_ENDPOINT = "unknown_endpoint"
    UNKNOWN_EVENT = "unknown_event"

    @property
    def row(self) -> _Row:
        return _TABLE[self]

    @property
    def status(self) -> int:
        return _TABLE[self].status

    @property
    def http_status(self) -> int:
        return _TABLE[self].http

    @property
    def succeeded(self) -> bool:
        return _TABLE[self].status == 1

    def message(self, lang: str, *, detail: str = "", retry: float | None = None) -> str:
        row = _TABLE[self]
        template = row.en if lang == "en" else row.zh
        retry_text = "" if retry is None else f"{max(retry, 0.0):.1f}".rstrip("0").rstrip(".")
        return template.format(detail=detail, retry=retry_text or "0").strip()


_TABLE: dict[Outcome, _Row] = {
    Outcome.JOINED: _Row(1, 200, "加入成功", "Joined the server"),
    Outcome.ALREADY_MEMBER: _Row(1, 200, "已经是该服务器的成员", "Already a member of the server"),
    Outcome.TOKEN_EXPIRED: _Row(0, 200, "token 过期(账号未登录)", "Authorization expired or invalid (not logged in)"),
    Outcome.INVALID_OAUTH_TOKEN: _Row(
        0,
        200,
        "该令牌没有以 guilds.join 授权给本应用",
        "The token was not granted to this application with guilds.join",
    ),
    Outcome.UNKNOWN_INVITE: _Row(0, 200, "邀请码无效或已过期", "Unknown or expired invite"),
    Outcome.UNKNOWN_GUILD: _Row(
        0,
        200,
        "服务器不存在：请检查服务器 ID，或机器人不在该服务器中",
        "Unknown server: check the id, or the bot is not in it",
    ),
    Outcome.BOT_NOT_IN_GUILD: _Row(0, 200, "机器人无权访问该服务器", "The bot has no access to this server"),
    Outcome.BOT_MISSING_PERMISSIONS: _Row(
        0,
        200,
        "机器人缺少权限（创建邀请、管理身份组或身份组顺序）",
        "The bot lacks a permission (Create Invite, Manage Roles or role order)",
    ),
    Outcome.BANNED: _Row(0, 200, "该用户已被此服务器封禁", "The user is banned from this server"),
    Outcome.MAX_GUILDS: _Row(0, 200, "该用户加入的服务器数量已达上限", "The user is in the maximum number of servers"),
    Outcome.DISCORD_ERROR: _Row(0, 200, "Discord 拒绝了请求：{detail}", "{detail}"),
    Outcome.DISCORD_UNAVAILABLE: _Row(
        0, 502, "Discord 暂时不可用，请稍后再试", "Discord is unavailable, try again later"
    ),
    Outcome.RATE_LIMITED: _Row(
        0, 503, "被 Discord 限速，请在 {retry} 秒后重试", "Rate limited by Discord, retry after {retry} s"
    ),
    Outcome.INVALID_API_KEY: _Row(
        0, 401, "User-Token 缺失、无效或已被吊销", "The User-Token header is missing, unknown or revoked"
    ),
    Outcome.INVALID_REQUEST: _Row(0, 400, "请求无效：{detail}", "Invalid request: {detail}"),
    Outcome.NOT_AN_OAUTH_TOKEN: _Row(
        0,
        400,
        "authorization 不是 OAuth2 访问令牌（形似账号或机器人令牌），已拒绝且未发送",
        "authorization is not an OAuth2 access token (it looks like an account or bot token); refused and never sent",
    ),
    Outcome.PROXY_NOT_ALLOWED: _Row(
        0,
        400,
        "不允许使用该代理：只能使用运营方配置的出口代理",
        "proxy is not one of the operator's allowed egress proxies",
    ),
    Outcome.QUOTA_EXCEEDED: _Row(
        0,
        429,
        "该 API 密钥的配额已用完，请在 {retry} 秒后重试",
        "This API key's quota is spent, retry after {retry} s",
    ),
    Outcome.IDEMPOTENCY_CONFLICT: _Row(
        0,
        409,
        "该 Idempotency-Key 已用于另一个不同的请求",
        "This Idempotency-Key was already used with a different request body",
    ),
    Outcome.VELOCITY_CAPPED: _Row(
        0,
        429,
        "加入该服务器（或通过该链接）的速度已达运营方设定的上限，请在 {retry} 秒后重试",
        "Too many joins to this server (or through this link) right now: the operator's cap; retry after {retry} s",
    ),
    Outcome.INVALID_REQUEST_SHARE_EXCEEDED: _Row(
        0,
        429,
        "该 API 密钥在 10 分钟内被 Discord 拒绝的请求（401/403/429）已达其份额上限，请在 {retry} 秒后重试",
        "This API key has had its share of requests Discord refused (401/403/429) in 10 minutes; retry after {retry} s",
    ),
    Outcome.READ_QUOTA_EXCEEDED: _Row(
        0,
        429,
        "该 API 密钥每分钟的查询次数已用完，请在 {retry} 秒后重试",
        "This API key's reads per minute are spent, retry after {retry} s",
    ),
    Outcome.CANCELLED: _Row(0, 200, "已在 Discord 上取消授权", "Cancelled on Discord"),
    Outcome.LINK_EXPIRED: _Row(0, 410, "该加入链接已过期", "This join link has expired"),
    Outcome.LINK_USED_UP: _Row(0, 410, "该加入链接的使用次数已用完", "This join link has been used up"),
    Outcome.LINK_DISABLED: _Row(0, 410, "该加入链接已被停用", "This join link has been disabled"),
    Outcome.UNKNOWN_GRANT: _Row(0, 404, "没有该授权（或它不属于此应用）", "No such grant for this app"),
    Outcome.GRANT_ENDED: _Row(0, 409, "该授权已结束，无法再修改", "This grant has ended and cannot be changed"),
    Outcome.NOT_A_MEMBER: _Row(
        0,
        409,
        "该用户不在此服务器中：请先让其经授权加入",
        "The user is not a member of this server: they join first, with their consent",
    ),
    Outcome.ACCESS_ENDED: _Row(0, 403, "你通过此链接获得的访问权限已结束", "Your access through this link has ended"),
    Outcome.EXTERNAL_REF_TAKEN: _Row(
        0,
        409,
        "该 external_ref 已属于此服务器中另一个人的有效授权",
        "This external_ref belongs to another person's active grant in this server",
    ),
    Outcome.UNKNOWN_ENDPOINT: _Row(0, 404, "没有该 webhook 端点：{detail}", "No such webhook endpoint: {detail}"),
    Outcome.UNKNOWN_EVENT: _Row(0, 404, "没有该事件：{detail}", "No such event: {detail}"),
}
