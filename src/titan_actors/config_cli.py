"""Typer integration of the settings: CLI options derived from the declarations.

Imported lazily through :mod:`titan_actors.config` (``config.settings_options``), so that the
servers and the SDK can import the settings without importing typer.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

import typer

from titan_actors.config import SETTINGS, Setting, load_config
from titan_actors.config_parse import closest
from titan_actors.errors import ConfigError

__all__ = ["settings_options"]


def settings_options(
    *names: str, config_option: bool = True, env: Mapping[str, str] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a typer command so that it takes the named settings as options.

    One ``typer.Option`` per setting is added to the function's ``__signature__`` (flag and help
    from the declaration, default None so "not given" is visible), plus ``--config`` unless
    ``config_option`` is false. The decorated function must have a ``config`` parameter; it is
    removed from the CLI and receives the :class:`Config` built by :func:`load_config` from those
    options, the environment (``env``, or ``os.environ`` read at each call) and the config file.
    An invalid setting is reported as a usage error (exit code 2).

    Raises:
        ConfigError: a name is not a setting.
        TypeError: the function has no ``config`` parameter, or a parameter named like a setting.
    """
    for name in names:
        if name not in SETTINGS:
            hint = closest(name, SETTINGS)
            raise ConfigError(
                f"unknown setting {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")
            )
    selected = list(dict.fromkeys(names))
    if config_option and "config_file" not in selected:
        selected.append("config_file")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        return _wrap_command(func, [SETTINGS[n] for n in selected], env)

    return decorate


def _wrap_command(
    func: Callable[..., Any], settings: list[Setting], env: Mapping[str, str] | None
) -> Callable[..., Any]:
    try:
        signature = inspect.signature(func, eval_str=True)
    except NameError:  # an annotation only importable under TYPE_CHECKING
        signature = inspect.signature(func)
    if "config" not in signature.parameters:
        raise TypeError(f"{func.__qualname__} needs a `config` parameter to receive the Config")
    kept = [p for p in signature.parameters.values() if p.name != "config"]
    for setting in settings:
        if setting.name in signature.parameters:
            raise TypeError(
                f"{func.__qualname__} has a parameter {setting.name!r}, which is a setting"
            )
    added = [
        inspect.Parameter(
            s.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                None, s.flag, help=_option_help(s), metavar=s.metavar, show_default=False
            ),
            annotation=str | None,
        )
        for s in settings
    ]
    names = [s.name for s in settings]

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        flags = {name: kwargs.pop(name, None) for name in names}
        try:
            config = load_config(flags, env=os.environ if env is None else env)
        except ConfigError as e:
            raise typer.BadParameter(str(e)) from e
        return func(*args, config=config, **kwargs)

    params = kept + added
    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    # typer also reads get_type_hints(command): give it the resolved annotations, not func's.
    command.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
    return command


def _option_help(setting: Setting) -> str:
    default = setting.display(setting.default)
    return f"{setting.help} (env {setting.env}; default {default})"
