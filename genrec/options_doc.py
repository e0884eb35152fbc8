"""docs/options.md, written from config.py: every option with its default and one line, and the old names.

    python -m genrec.options_doc            # rewrite docs/options.md
    python -m genrec.options_doc --check    # exit 1 when docs/options.md is out of date (a test runs this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import config

OPTIONS_FILE = Path(__file__).resolve().parents[1] / "docs" / "options.md"


def render() -> str:
    docs = config.field_docs()
    total = sum(len(rows) for _, rows in docs.values())
    lines = ["# Options", "",
             f"Every option ({total}), by group, generated from `config.py` by `python -m genrec.options_doc` "
             "(a test fails when this file is out of date). Set one as `--group.field value`, or in a YAML file given "
             "with `--config FILE` (`{group: {field: value}}`, as in `presets/`); the command line wins. A script's "
             "`--help` lists the groups it reads.", ""]
    for group, (doc, rows) in docs.items():
        lines += [f"## `{group}`", "", doc, "", "| option | default | what |", "|---|---|---|"]
        for name, kind, default, text in rows:
            shown = repr(default) if isinstance(default, str) else default
            lines.append(f"| `{group}.{name}` | `{shown}` | {text.replace('|', '/')} |")
        lines.append("")
    lines += ["## Renamed and removed options", "",
              "An old name fails with a one-line error that names its replacement (commands in `docs/experiments/` "
              "use the names of their time).", "", "| old option | now |", "|---|---|"]
    lines += [f"| `{old}` | `{new}` |" for old, new in config.RENAMED.items()]
    lines += [f"| `{old}` | removed: {why} |" for old, why in config.REMOVED.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OPTIONS_FILE.read_text(encoding="utf-8") if OPTIONS_FILE.exists() else ""
        if current != text:
            print(f"{OPTIONS_FILE} is out of date: run python -m genrec.options_doc", file=sys.stderr)
            return 1
        return 0
    OPTIONS_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {OPTIONS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
