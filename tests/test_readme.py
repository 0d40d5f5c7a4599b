"""README.md is true: its ```python blocks run as written, its names, defaults and CLI lines exist."""

from __future__ import annotations

import itertools
import re
import shlex
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


def test_readme_names_every_public_error_and_function() -> None:
    """The errors users catch and the functions they call are all in the README."""
    import ngio_async

    text = README.read_text()
    names = [
        name
        for name in ngio_async.__all__
        if (name.endswith("Error") or name[0].islower()) and not name.startswith("_")
    ]
    assert [name for name in names if f"`{name}" not in text and f"{name}(" not in text] == []


def test_readme_limits_defaults_are_the_real_ones() -> None:
    import ngio_async

    shown = re.search(r"Limits\(([^)]*)\)", README.read_text())
    assert shown is not None
    units = {"MiB": 1 << 20, "GiB": 1 << 30}
    for item in shown.group(1).split(","):
        name, value = (part.strip() for part in item.split("="))
        number, _, unit = value.partition(" ")
        assert getattr(ngio_async.Limits(), name) == float(number) * units.get(unit, 1), name


def test_readme_cli_examples_parse() -> None:
    """Every ``ngio-async ...`` line of the README's shell blocks uses options that exist."""
    from ngio_async.cli.main import build_parser

    lines = [
        line.split("#")[0]
        for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
        for line in block.splitlines()
        if line.startswith("ngio-async ")
    ]
    assert len(lines) >= 5
    for line in lines:
        _args, unknown = build_parser().parse_known_args(shlex.split(line)[1:])
        assert unknown == [], line


def test_cli_help_states_every_default() -> None:
    """An option whose default is a value (not 'unset') says so in its help."""
    import argparse

    from ngio_async.cli.main import build_parser

    missing = []
    for name, command in build_parser().get_default("_commands").items():
        for action in command._actions:
            value = action.default
            if value is None or value is False or value == argparse.SUPPRESS:
                continue
            if not action.option_strings:
                continue
            if "default" not in (action.help or ""):
                missing.append(f"{name} {action.option_strings[-1]}")
    assert missing == []


def test_readme_dotted_names_exist() -> None:
    """Every ``ngio_async.x.y`` the README names can be imported or looked up."""
    import importlib

    names = set(re.findall(r"\bngio_async(?:\.[A-Za-z_]\w*)+", README.read_text()))
    assert len(names) >= 5
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            break


def test_readme_cli_options_exist() -> None:
    """Every ``--option`` the README names is an option of some ``ngio-async`` command."""
    from ngio_async.cli.main import build_parser

    options = {
        option
        for command in build_parser().get_default("_commands").values()
        for action in command._actions
        for option in action.option_strings
    }
    text = re.sub(r"`(ruff|pip|make|python)[^`]*`", "", README.read_text())  # other tools
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))
    assert len(named) >= 5
    assert sorted(named - options) == []


def test_readme_max_open_fields_default_is_the_real_one() -> None:
    import inspect

    from ngio_async.web import create_app

    shown = re.search(
        r"`max_open_fields` \(`--max-open-fields`, default (\d+)\)", README.read_text()
    )
    assert shown is not None
    default = inspect.signature(create_app).parameters["max_open_fields"].default
    assert int(shown.group(1)) == default


def test_readme_exit_statuses_are_the_real_ones() -> None:
    from ngio_async.cli import _common

    shown = re.search(
        r"non-zero exit status \((\d+) invalid data, (\d+) usage[^,]*, (\d+)\s+interrupted",
        README.read_text(),
    )
    assert shown is not None
    real = (_common.EXIT_INVALID, _common.EXIT_ERROR, _common.EXIT_INTERRUPTED)
    assert tuple(int(group) for group in shown.groups()) == real


def test_readme_tiles_signature_is_the_real_one() -> None:
    """The ``ds.tiles(...)`` call the README spells out has the real parameters and defaults."""
    import inspect

    from ngio_async import Dataset, SyncDataset

    shown = re.search(r"`ds\.tiles\(([^`]*)\)`", README.read_text())
    assert shown is not None
    items = [item.strip() for item in shown.group(1).replace("\n", " ").split(",")]
    for cls in (Dataset, SyncDataset):
        params = list(inspect.signature(cls.tiles).parameters.values())[1:]
        real = [
            f"**{p.name}" if p.kind is p.VAR_KEYWORD else f"{p.name}={p.default!r}" for p in params
        ]
        assert items == real, cls.__name__


def test_readme_make_targets_exist() -> None:
    makefile = (README.parent / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.MULTILINE))
    text = README.read_text()
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", text))
    named |= set(re.findall(r"`(bench-[\w-]+)`", text))  # "make bench-stream, `bench-write`"
    assert len(named) >= 4
    assert sorted(named - targets) == []
