"""Command-line parsing into :class:`config.Config`, logging, and one-line error reporting.

Parsing is done by jsonargparse from the dataclasses themselves: ``--group.field value`` on the
command line, ``--config FILE`` (YAML or JSON) for a file, and ``--help`` listing every field.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import textwrap
from pathlib import Path
from typing import Callable, Sequence

from argparse import ArgumentError

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser

import config as config_module
from config import Config

from genrec.errors import ConfigError, GenrecError

log = logging.getLogger("genrec")

LOG_DIR = "logs"
"""Every script logs to logs/<script>.log in the working folder."""


def build_parser(description: str, extra: Callable[[ArgumentParser], None] | None = None) -> ArgumentParser:
    """The parser of every group: a script accepts them all, so one --config or run_pipeline.py's flags serve every
    stage (its --help, :func:`format_help`, lists only the groups it reads)."""
    parser = ArgumentParser(description=description, exit_on_error=False, env_prefix=None)
    parser.add_argument("--config", action=ActionConfigFile,
                        help="YAML or JSON file of {group: {field: value}}; command-line flags override it.")
    if extra is not None:
        extra(parser)
    for field in dataclasses.fields(Config):
        parser.add_class_arguments(field.default_factory, field.name)
    return parser


def expand_short_flags(argv: Sequence[str], short: dict[str, str]) -> list[str]:
    """``--title X`` -> ``--generate.title X`` (per script); a flag mapped to 'group.field=value' takes no value."""
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        target = short.get(name) if arg.startswith("--") and "." not in name else None
        if target is None:
            out.append(arg)
        elif "=" in target:  # a switch: --json, or --json=false
            flag, implied = target.split("=", 1)
            out.extend([flag, value if eq else implied])
        else:
            out.extend([target, value] if eq else [target])
    return out


def refuse_retired(argv: Sequence[str]) -> None:
    """Old option names, on the command line or in a --config file, fail naming the option that replaced them."""
    for i, arg in enumerate(argv):
        if arg.startswith("--") and "." in arg:
            message = config_module.retired_option(arg[2:].split("=")[0])
            if message:
                raise ConfigError(message)
        if arg == "--config" and i + 1 < len(argv) or arg.startswith("--config="):
            path = argv[i + 1] if arg == "--config" else arg.split("=", 1)[1]
            values = _read_config_file(path)
            config_module.check_retired(values, path)


def _read_config_file(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle)
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--config {path}: not valid YAML or JSON ({str(err).splitlines()[0]})") from None
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected {{group: {{field: value}}}}, got a {type(values).__name__}")
    return values or {}


def parse_config(argv: Sequence[str] | None = None, description: str = "",
                 extra: Callable[[ArgumentParser], None] | None = None,
                 short: dict[str, str] | None = None, help_groups: Sequence[str] | None = None) -> tuple[Config, dict]:
    """Parse ``argv`` into a validated Config; also return any script-specific extra arguments.

    ``short`` maps a script's everyday flags to full option names; ``help_groups`` are the groups its --help
    lists (every group is accepted, so one --config or run_pipeline.py's flags serve every stage).
    """
    argv = expand_short_flags(list(sys.argv[1:] if argv is None else argv), short or {})
    if "-h" in argv or "--help" in argv:
        print(format_help(description, short, help_groups, extra))
        sys.exit(0)
    try:
        refuse_retired(argv)
        namespace = build_parser(description, extra).parse_args(argv)
        values = namespace.as_dict()
        cfg = config_module.from_dict({name: values[name] for name in config_module.GROUPS})
        config_module.validate(cfg)
    except ArgumentError as err:
        raise ConfigError(_one_line(str(err))) from None
    except config_module.ConfigError as err:
        raise ConfigError(str(err)) from None
    extras = {k: v for k, v in values.items() if k not in config_module.GROUPS and k not in ("config", "__path__")}
    return cfg, extras


def format_help(description: str, short: dict[str, str] | None, groups: Sequence[str] | None,
                extra: Callable[[ArgumentParser], None] | None, width: int = 120) -> str:
    """The script's docstring, its own flags and short forms, then one entry per option of the groups it reads."""
    lines = [description.strip(), "", "options:", "  --config FILE  YAML or JSON {group: {field: value}} (presets/, "
             "data/<name>/config.yaml); repeatable, later files and command-line flags win"]
    if extra is not None:
        own = ArgumentParser(add_help=False)
        extra(own)
        for action in own._actions:
            choices = f" {{{','.join(action.choices)}}}" if action.choices else ""
            lines.append(f"  {'/'.join(action.option_strings)}{choices}  {action.help}")
    for flag, target in (short or {}).items():
        lines.append(f"  {flag:<12} short for --{target.lstrip('-').replace('=', ' ')}")
    docs = config_module.field_docs()
    for group in groups or config_module.GROUPS:
        doc, rows = docs[group]
        lines += ["", f"{group}: {doc}"]
        for name, _, default, text in rows:
            head = f"  --{group}.{name} {default!r}" if isinstance(default, str) else f"  --{group}.{name} {default}"
            lines.extend(textwrap.wrap(text, width, initial_indent=f"{head:<40}", subsequent_indent=" " * 40)
                         if len(head) < 40 else [head, *textwrap.wrap(text, width, initial_indent=" " * 6,
                                                                      subsequent_indent=" " * 6)])
    lines += ["", "Every other group is accepted too (docs/options.md lists all options)." if groups else ""]
    return "\n".join(lines).rstrip()


def _one_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()][:2]
    if not lines:
        return "bad command line"
    return lines[0] + (("" if lines[0].endswith(":") else ";") + " " + lines[1] if len(lines) > 1 else "")


def setup_logging(cfg: Config, script: str) -> Path:
    """Log INFO to the console and DEBUG to logs/<script>.log (appending, one file per script)."""
    log_dir = Path(LOG_DIR)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{Path(script).stem}.log"
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setLevel(logging.DEBUG)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    root.addHandler(to_file)
    for noisy in ("matplotlib", "PIL", "urllib3", "filelock", "gensim", "smart_open"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return log_file


def run_script(main: Callable[[Config, dict], int | None], description: str,
               extra: Callable[[ArgumentParser], None] | None = None,
               argv: Sequence[str] | None = None, short: dict[str, str] | None = None,
               groups: Sequence[str] | None = None) -> int:
    """Parse, log, run ``main(cfg, extras)``; turn a GenrecError into one line on stderr and exit 1."""
    script = Path(sys.argv[0]).name
    try:
        cfg, extras = parse_config(argv, description, extra, short, groups)
        log_file = setup_logging(cfg, script)
        log.debug("command line: %s", " ".join(sys.argv))
        log.debug("log file: %s", log_file)
        return main(cfg, extras) or 0
    except (GenrecError, config_module.ConfigError) as err:
        log.debug("failed", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        # The machine refused a read or write (a full disk, a read-only or missing folder, a directory where a file
        # should be): artifacts are written atomically, so the earlier ones are intact. The log keeps the traceback.
        log.debug("failed", exc_info=True)
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err} (nothing was replaced; earlier artifacts are intact)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
