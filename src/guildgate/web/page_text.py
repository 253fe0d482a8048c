"""Every word on the HTML pages, in English and Simplified Chinese. ``{name}`` fields are filled in by the page."""

from __future__ import annotations

from typing import Final

TEXT: Final[dict[str, tuple[str, str]]] = {  # key: (en, zh)
    "lang_switch": ("中文", "English"),
    "invited_to": ("You're invited to join", "邀请你加入"),
    "you_will_get": ("You'll get the role", "你将获得身份组"),
    "you_will_get_many": ("You'll get the roles", "你将获得以下身份组"),
    "what_happens": ("What happens", "接下来会发生什么"),
    "step_1": (
        "Discord asks you to sign in and allow “Join servers for you”.",
        "Discord 会请你登录并允许“为你加入服务器”。",
    ),
    "step_2": (
        "We add you to {server} once, with the roles above, and then give the permission back at once.",
        "我们只会把你加入 {server} 一次（附带上述身份组），随后立即交还该授权。",
    ),
    "step_3": (
        "Nothing else: we don't read your messages, see your other servers, or keep your login.",
        "仅此而已：我们不会读取你的消息、查看你的其他服务器或保存你的登录凭据。",
    ),
    "continue": ("Continue with Discord", "使用 Discord 继续"),
    "uses_left": ("{n} uses left", "剩余 {n} 次"),
    "expires": ("Link expires {when} UTC", "链接将于 {when}（UTC）过期"),
    "open_discord": ("Open Discord", "打开 Discord"),
    "try_again": ("Open the link again", "重新打开链接"),
    "not_found_title": ("This join link doesn't exist", "该加入链接不存在"),
    "not_found_next": (
        "Check that you copied the whole link, or ask for a new one.",
        "请确认链接完整，或向对方索取新的链接。",
    ),
    # results, by outcome code: (title, next step)
    "r_joined": ("You're in {server}", "你已加入 {server}"),
    "n_joined": ("Open Discord to say hello.", "打开 Discord 打个招呼吧。"),
    "r_already_member": ("You were already in {server}", "你已经是 {server} 的成员"),
    "n_already_member": ("Nothing else to do: open Discord.", "无需其他操作：打开 Discord 即可。"),
    "roles_given": ("Roles you have now: {roles}", "你现在拥有的身份组：{roles}"),
    "roles_failed": (
        "We could not give you: {roles}. Ask the server's moderators.",
        "未能授予：{roles}。请联系服务器管理员。",
    ),
    "r_cancelled": ("You cancelled on Discord", "你在 Discord 上取消了授权"),
    "n_cancelled": (
        "Nothing changed. Open the link again if you change your mind.",
        "没有任何改动。如果改变主意，可以重新打开链接。",
    ),
    "r_banned": ("You can't join {server}", "你无法加入 {server}"),
    "n_banned": (
        "You are banned from this server. Only its moderators can lift a ban.",
        "你已被该服务器封禁，只有其管理员可以解除。",
    ),
    "r_max_guilds": ("You're in too many servers", "你加入的服务器数量已达上限"),
    "n_max_guilds": (
        "Discord allows 100 servers (200 with Nitro). Leave one, then open the link again.",
        "Discord 最多允许加入 100 个服务器（Nitro 为 200 个）。退出一个后再重新打开链接。",
    ),
    "r_link_expired": ("This join link has expired", "该加入链接已过期"),
    "r_link_used_up": ("This join link has been used up", "该加入链接的使用次数已用完"),
    "r_link_disabled": ("This join link has been turned off", "该加入链接已被停用"),
    "n_link": ("Ask whoever gave you the link for a new one.", "请向提供链接的人索取新的链接。"),
    "r_unavailable": ("Discord is not answering right now", "Discord 暂时没有响应"),
    "n_unavailable": ("Nothing changed. Try again in a few minutes.", "没有任何改动。请几分钟后再试。"),
    "r_setup": ("This server's setup has a problem", "该服务器的设置有问题"),
    "n_setup": ("Tell the server's admins: {detail}", "请告知服务器管理员：{detail}"),
    "r_signin": ("Discord didn't accept the sign-in", "Discord 未接受此次登录"),
    "n_signin": ("Open the link again and allow access on Discord.", "请重新打开链接，并在 Discord 上允许授权。"),
    "r_state": ("This sign-in can't be used", "此次登录无法使用"),
    "n_state_bad": ("It didn't come from this site, or it was changed.", "它并非来自本站，或已被修改。"),
    "n_state_expired": ("It took longer than 10 minutes.", "耗时超过了 10 分钟。"),
    "n_state_browser": (
        "It was started in another browser (or cookies are off).",
        "它是在另一个浏览器中发起的（或 Cookie 被禁用）。",
    ),
    "n_state_used": (
        "It was already used: the page was reloaded or opened twice.",
        "它已经被使用过：页面被刷新或打开了两次。",
    ),
    "n_state_again": ("Open the join link again to start over.", "请重新打开加入链接以重新开始。"),
    "footer": (
        "Adding you through Discord's own sign-in. Powered by guildgate.",
        "通过 Discord 官方授权加入。由 guildgate 提供。",
    ),
    "skip": ("Skip to content", "跳到正文"),
}


def text(key: str, lang: str, **fields: object) -> str:
    en, zh = TEXT[key]
    template = zh if lang == "zh" else en
    return template.format(**fields) if fields else template
