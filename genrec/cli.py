"""Command-line parsing into :class:`config.Config`, logging, and one-line error reporting.

Parsing is done by jsonargparse from the dataclasses themselves: ``--group.field value`` on the
command line, ``--config FILE`` (YAML or JSON) for a file, and ``--help`` listing every field.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

import config as config_module
from config import Config

from genrec.errors import ConfigError, GenrecError

log = logging.getLogger("genrec")

set_parsing_settings(docstring_parse_attribute_docstrings=True)


def group_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


def build_parser(description: str, extra: Callable[[ArgumentParser], None] | None = None) -> ArgumentParser:
    parser = ArgumentParser(description=description, exit_on_error=True, env_prefix=None)
    parser.add_argument("--config", action=ActionConfigFile,
                        help="YAML or JSON file of {group: {field: value}}; command-line flags override it.")
    if extra is not None:
        extra(parser)
    for field in dataclasses.fields(Config):
        parser.add_class_arguments(field.default_factory, field.name)
    return parser


def parse_config(argv: Sequence[str] | None = None, description: str = "",
                 extra: Callable[[ArgumentParser], None] | None = None) -> tuple[Config, dict]:
    """Parse ``argv`` into a validated Config; also return any script-specific extra arguments."""
    parser = build_parser(description, extra)
    namespace = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    values = namespace.as_dict()
    groups = {name: getattr(Config, "__dataclass_fields__")[name].default_factory for name in group_names()}
    cfg = Config(**{name: groups[name](**values[name]) for name in groups})
    extras = {k: v for k, v in values.items() if k not in groups and k != "config" and k != "__path__"}
    validate(cfg)
    return cfg, extras


def validate(cfg: Config) -> None:
    """Apply the rules declared in config.py; raise ConfigError naming the field and the rule."""
    for group in group_names():
        for field in dataclasses.fields(getattr(cfg, group)):
            _check_field(f"{group}.{field.name}", getattr(getattr(cfg, group), field.name))
    if cfg.split.val_ratio + cfg.split.test_ratio >= 1:
        raise ConfigError("split.val_ratio + split.test_ratio must be below 1 "
                          f"(got {cfg.split.val_ratio} + {cfg.split.test_ratio})")
    if cfg.tiger.retrieved_songs and cfg.tiger.retrieval_folds < 2:
        raise ConfigError(f"tiger.retrieval_folds must be at least 2 with tiger.retrieved_songs "
                          f"(got {cfg.tiger.retrieval_folds})")
    if cfg.tiger.retrieval_use != "input" and not cfg.tiger.retrieved_songs:
        raise ConfigError(f"tiger.retrieval_use={cfg.tiger.retrieval_use} copies retrieved songs one ID at a time: it "
                          "needs tiger.retrieved_songs above 0 (got 0)")
    if max(cfg.eval.k_values) > cfg.eval.num_songs:
        raise ConfigError(f"eval.k_values {cfg.eval.k_values} go beyond eval.num_songs={cfg.eval.num_songs}")


def _check_field(name: str, value) -> None:
    if name in config_module.CHOICES and value not in config_module.CHOICES[name]:
        raise ConfigError(f"{name} must be one of {', '.join(config_module.CHOICES[name])} (got {value!r})")
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        floor = 0 if name in config_module.MAY_BE_ZERO else 1
        if value < floor:
            raise ConfigError(f"{name} must be at least {floor} (got {value})")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number (got {value})")
        if name in config_module.UNIT_INTERVAL and not 0 <= value <= 1:
            raise ConfigError(f"{name} must be between 0 and 1 (got {value})")
        if name in config_module.POSITIVE_FLOATS and value <= 0:
            raise ConfigError(f"{name} must be greater than 0 (got {value})")
        if name in config_module.NON_NEGATIVE_FLOATS and value < 0:
            raise ConfigError(f"{name} must be at least 0 (got {value})")
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        if min(value) < 1:
            raise ConfigError(f"{name} values must be at least 1 (got {value})")


def config_as_dict(cfg: Config, groups: Sequence[str] | None = None) -> dict:
    full = dataclasses.asdict(cfg)
    return full if groups is None else {g: full[g] for g in groups}


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the resolved config beside a run's artifacts, in the format --config reads back."""
    from genrec.artifacts import write_text
    write_text(path, yaml.safe_dump(config_as_dict(cfg), allow_unicode=True, sort_keys=False))


def setup_logging(cfg: Config, script: str) -> Path:
    """Log INFO to the console and DEBUG to logs/<script>.log (appending, one file per script)."""
    log_dir = Path(cfg.run.log_dir)
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
               argv: Sequence[str] | None = None) -> int:
    """Parse, log, run ``main(cfg, extras)``; turn a GenrecError into one line on stderr and exit 1."""
    script = Path(sys.argv[0]).name
    # Models are only ever read from local folders: never let a library reach for the Hugging Face hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        cfg, extras = parse_config(argv, description, extra)
        log_file = setup_logging(cfg, script)
        log.debug("command line: %s", " ".join(sys.argv))
        log.debug("log file: %s", log_file)
        return main(cfg, extras) or 0
    except GenrecError as err:
        log.debug("failed", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
