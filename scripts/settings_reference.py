"""Print the configuration reference (a Markdown table) generated from the settings schema.

    python scripts/settings_reference.py          # print the table
    python scripts/settings_reference.py --write  # rewrite README.md between the markers
    python scripts/settings_reference.py --check  # exit 1 if README.md is out of date

The table is built from ``idp.config.Settings.model_fields``, so the README can never disagree
with the code: ``tests/test_docs.py`` fails when a setting is added without re-running
``--write``. Secret defaults are never printed, only marked as insecure development values.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from annotated_types import Ge, Gt, Le, Lt  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402

from idp.config import Settings  # noqa: E402

README = ROOT / "README.md"
START = "<!-- settings:start -->"
END = "<!-- settings:end -->"
INSECURE_DEFAULT = "(insecure development value)"
LONGEST_DEFAULT = 60  # characters; longer list defaults are summarised in the table


def env_name(name: str, field: FieldInfo) -> str:
    """The environment variable that sets this field."""
    if isinstance(field.validation_alias, str):
        return field.validation_alias.upper()
    if field.alias:
        return field.alias.upper()
    prefix = Settings.model_config.get("env_prefix", "")
    return f"{prefix}{name}".upper()


def _is_secret(value: Any) -> bool:
    if isinstance(value, SecretStr):
        return True
    return isinstance(value, list | tuple) and any(isinstance(v, SecretStr) for v in value)


def format_default(field: FieldInfo) -> str:
    """How the default reads in the table. Secret values are never shown."""
    if field.is_required():
        return "*required*"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "*unset*"
    if _is_secret(value):
        return INSECURE_DEFAULT
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | tuple | dict):
        shown = json.dumps(value)
        if len(shown) > LONGEST_DEFAULT and isinstance(value, list | tuple):
            first = ", ".join(f"`{v}`" for v in value[:3])
            return f"{len(value)} values: {first}, … (see `idp/config.py`)"
        return f"`{shown}`"
    return f"`{value}`"


def _choices(annotation: Any) -> list[str]:
    """The allowed values of a Literal annotation (also inside ``Literal[...] | None``)."""
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    for arg in get_args(annotation):
        if get_origin(arg) is Literal:
            return [str(a) for a in get_args(arg)]
    return []


def _bounds(field: FieldInfo) -> list[str]:
    words = {Ge: ("at least", "ge"), Gt: ("more than", "gt"), Le: ("at most", "le"),
             Lt: ("less than", "lt")}  # fmt: skip
    found = []
    for item in field.metadata:
        for kind, (word, attr) in words.items():
            if isinstance(item, kind):
                found.append(f"{word} {getattr(item, attr)}")
    return found


def describe(field: FieldInfo) -> str:
    text = (field.description or "").strip()
    extras = []
    choices = _choices(field.annotation)
    if choices:
        extras.append("One of " + ", ".join(f"`{c}`" for c in choices) + ".")
    bounds = _bounds(field)
    if bounds:
        extras.append("Allowed: " + ", ".join(bounds) + ".")
    return " ".join([text, *extras]).strip()


def _cell(text: str) -> str:
    """One table cell: one line, no column breaks, no text a renderer takes for HTML.

    ``<`` is escaped only outside `code spans`, where Markdown shows it as it is.
    """
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def settings_table() -> str:
    """The Markdown table of every setting, in the schema's order."""
    lines = [
        "| Environment variable | Default | Description |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        lines.append(
            f"| `{env_name(name, field)}` | {_cell(format_default(field))} "
            f"| {_cell(describe(field))} |"
        )
    return "\n".join(lines) + "\n"


def readme_table(text: str) -> str:
    """The part of README text between the markers (the table, with its newlines)."""
    if START not in text or END not in text:
        raise SystemExit(f"README.md needs the markers {START} and {END}")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def with_table(text: str, table: str) -> str:
    """README text with the table between the markers replaced."""
    readme_table(text)  # checks the markers are there
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    return f"{before}{START}\n{table}{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite README.md's table")
    group.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args(argv)
    table = settings_table()
    if args.write:
        README.write_text(with_table(README.read_text(encoding="utf-8"), table), encoding="utf-8")
        print(f"README.md: configuration reference updated ({table.count(chr(10)) - 2} settings)")
        return 0
    if args.check:
        if readme_table(README.read_text(encoding="utf-8")) != table:
            print("README.md's configuration reference is out of date: run")
            print("  .venv/bin/python scripts/settings_reference.py --write")
            return 1
        return 0
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
