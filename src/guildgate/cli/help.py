"""How every command's help reads: plain text (no Rich panels), ``-h`` as well as ``--help``, each option with
its value named by a word (``--limit N``, ``--app CLIENT_ID``) and described, never a type placeholder
(``<str>``, ``{key_id}``, ``TEXT``). ``group()`` and ``command()`` make the Typer apps and commands that read
so; tests/cli/test_help.py walks every command's help."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 120}


def _value_name(param: Any) -> str:
    return str(param.metavar or param.name.upper())


def _usage(param: Any) -> list[str]:
    if param.param_type_name != "argument":
        return []
    name = _value_name(param) + ("..." if param.nargs != 1 else "")
    return [name if param.required else f"[{name}]"]


def _row(param: Any) -> tuple[str, str] | None:
    if param.hidden:
        return None
    extra = []
    if param.param_type_name == "argument":
        names = _value_name(param)
    else:
        names = ", ".join(sorted(param.opts, key=len))
        if param.secondary_opts:
            names += " / " + ", ".join(param.secondary_opts)
        if not param.is_flag:
            names += " " + _value_name(param)
        if param.envvar:
            extra.append(f"env: {param.envvar}")
        default = param.default
        if not param.is_flag and not param.required and default not in (None, (), []) and not callable(default):
            extra.append(f"default: {default}")
    if param.required:
        extra.append("required")
    text = (param.help or "").strip()
    return names, f"{text} ({'; '.join(extra)})" if extra else text


def _format(params: list[Any], formatter: Any) -> None:
    for title, kind in (("Arguments", "argument"), ("Options", "option")):
        rows = [row for p in params if p.param_type_name == kind and (row := _row(p)) is not None]
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


class Command(TyperCommand):
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [piece for p in self.get_params(ctx) for piece in _usage(p)]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format(self.get_params(ctx), formatter)


class Group(TyperGroup):
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return [*pieces, "COMMAND", "[ARGS]..."]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format(self.get_params(ctx), formatter)
        self.format_commands(ctx, formatter)


def group(help: str, **kwargs: Any) -> typer.Typer:
    return typer.Typer(
        help=help,
        cls=Group,
        rich_markup_mode=None,
        context_settings=CONTEXT,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        **kwargs,
    )


def command(app: typer.Typer, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return app.command(name, cls=Command)
