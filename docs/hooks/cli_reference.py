"""mkdocs hook: the command line's reference pages show the ``--help`` of the parser itself.

A line ``<!-- cli-help COMMAND -->`` (``COMMAND`` a subcommand, or ``hf-reinforce`` for the top level) becomes a
``text`` block holding that parser's help, formatted at 100 columns, so the page can never disagree with the code.
An unknown command fails the build. A line ``<!-- config-fields -->`` becomes a table of
:class:`hf_reinforce.ReinforceConfig`'s fields (type, default, whether it is part of the run's identity, help), read
from the fields' metadata, the same metadata the command line is built from.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

MARKER = re.compile(r"^<!-- cli-help (\S+) -->$", re.MULTILINE)
FIELDS_MARKER = re.compile(r"^<!-- config-fields -->$", re.MULTILINE)


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from hf_reinforce.cli import PROG, build_parser

    parser = build_parser()
    found = {PROG: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _help(parser: argparse.ArgumentParser) -> str:
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width
    try:
        return parser.format_help()
    finally:
        if columns is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = columns


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fields_table() -> str:
    import dataclasses

    from hf_reinforce import ReinforceConfig

    rows = ["| field | type | default | identity | meaning |", "|---|---|---|---|---|"]
    for field in dataclasses.fields(ReinforceConfig):
        if field.default is not dataclasses.MISSING:
            default = f"`{field.default!r}`"
        elif field.default_factory is not dataclasses.MISSING:
            default = f"`{field.default_factory()!r}`"
        else:
            default = "required"
        meta = field.metadata
        identity = "yes" if meta.get("identity") else ""
        rows.append(
            f"| `{field.name}` | `{_cell(str(field.type))}` | {_cell(default)} | {identity} | {_cell(meta['help'])} |"
        )
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if FIELDS_MARKER.search(markdown):
        markdown = FIELDS_MARKER.sub(lambda _: _fields_table(), markdown)
    if not MARKER.search(markdown):
        return markdown
    parsers = _parsers()

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in parsers:
            raise ValueError(f"{page.file.src_path}: no command {name!r} (known: {', '.join(sorted(parsers))})")
        return f"```text\n{_help(parsers[name]).rstrip()}\n```"

    return MARKER.sub(replace, markdown)
