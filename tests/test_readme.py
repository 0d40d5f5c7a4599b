"""Every ```python block of README.md runs as written (the README shows only examples that work)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_the_two_commands_at_the_top() -> None:
    head = README.read_text().splitlines()[:15]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)


def expected_output(block: str) -> list[str]:
    """The ``# ...`` comment right under each ``print(...)`` line is what it prints."""
    lines = block.splitlines()
    return [
        nxt.strip()[2:]
        for line, nxt in itertools.pairwise(lines)
        if "print(" in line and nxt.strip().startswith("# ")
    ]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(block: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    assert printed == expected_output(block)
