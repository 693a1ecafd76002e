"""The code blocks of the documentation's pages, and how each one runs (``tests/test_docs.py`` runs them).

A page's ``python``, ``bash`` and ``sh`` blocks are examples; blocks in any other language (``text``, ``bibtex``,
...) are not. An HTML comment right before a block (blank lines between are fine) changes how it runs::

    <!-- docs-test
    replace: OLD => NEW        run the block with OLD replaced by NEW (repeatable; OLD must occur in the block)
    before: CODE               run CODE first, in the block's language (repeatable)
    file: NAME                 write the block to NAME in the page's folder instead of running it
    expect: REGEX              the block's output must match REGEX (repeatable)
    run-as:                    run the rest of the comment instead of the block
    CODE ...
    -->

Comments and fences inside a fenced block are the block's text, never directives.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

LANGUAGES = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
DIRECTIVE = re.compile(r"^(?P<key>replace|before|file|expect):\s?(?P<value>.*)$")


@dataclasses.dataclass
class Block:
    """One fenced block of a page and the directives of the comment before it."""

    page: str
    line: int
    language: str
    code: str
    replace: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    before: list[str] = dataclasses.field(default_factory=list)
    file: str | None = None
    expect: list[str] = dataclasses.field(default_factory=list)
    run_as: str | None = None

    @property
    def runs(self) -> bool:
        """Whether the block is an example (a language the suite runs)."""
        return self.language in LANGUAGES

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def code_to_run(self) -> str:
        """The block's code with its replacements, or its ``run-as`` code."""
        if self.run_as is not None:
            return self.run_as
        code = self.code
        for old, new in self.replace:
            if old not in code:
                raise AssertionError(f"{self.where}: 'replace: {old} => {new}' does not occur in the block")
            code = code.replace(old, new)
        return code


def parse_comment(text: str, where: str) -> dict:
    """The directives of a ``docs-test`` comment's body (the lines after ``<!-- docs-test``)."""
    found: dict = {"replace": [], "before": [], "expect": [], "file": None, "run_as": None}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "run-as:":
            found["run_as"] = "\n".join(lines[i + 1 :]).strip("\n") + "\n"
            break
        if not line.strip():
            continue
        match = DIRECTIVE.match(line.strip())
        if match is None:
            raise AssertionError(f"{where}: unknown docs-test directive {line.strip()!r}")
        key, value = match["key"], match["value"]
        if key == "replace":
            old, arrow, new = value.partition(" => ")
            if not arrow:
                raise AssertionError(f"{where}: 'replace:' needs 'OLD => NEW', got {value!r}")
            found["replace"].append((old, new))
        elif key == "file":
            found["file"] = value.strip()
        else:
            found[key].append(value)
    return found


def blocks(path: Path, root: Path) -> list[Block]:
    """Every fenced block of the page at ``path``, in order, with its directives."""
    page = str(path.relative_to(root))
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    pending: tuple[dict, int] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("<!-- docs-test"):
            start = i
            body = [line.strip()[len("<!-- docs-test") :]]
            while "-->" not in body[-1]:
                i += 1
                if i == len(lines):
                    raise AssertionError(f"{page}:{start + 1}: docs-test comment is not closed")
                body.append(lines[i])
            body[-1] = body[-1][: body[-1].index("-->")]
            pending = (parse_comment("\n".join(body), f"{page}:{start + 1}"), start + 1)
            i += 1
            continue
        fence = FENCE.match(line)
        if fence is None:
            if line.strip() and pending is not None:
                raise AssertionError(f"{page}:{pending[1]}: a docs-test comment must come right before a code block")
            i += 1
            continue
        indent, mark, info = fence["indent"], fence["fence"], fence["info"].strip()
        fence_line = i + 1
        code = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(mark) and lines[i].strip().strip(mark[0]) == ""):
            code.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        language = info.split()[0].lower() if info else ""
        block = Block(page, fence_line, language, "\n".join(code) + "\n")
        if pending is not None:
            for key, value in pending[0].items():
                setattr(block, key, value)
            if not block.runs:
                raise AssertionError(f"{page}:{pending[1]}: a docs-test comment before a {language or 'plain'} block")
            pending = None
        out.append(block)
        i += 1
    return out
