"""``import ngio_async`` is quick: the heavy modules (numpy, obstore, aiohttp, zarr codecs) load
on first use of a name that needs them, and the command line's ``--help`` never loads them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ngio_async

HEAVY = ("numpy", "obstore", "aiohttp", "numcodecs", "zarr", "anyio", "tifffile")


def _loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return list(ast.literal_eval(out.strip().splitlines()[-1]))


def test_importing_the_package_loads_no_heavy_module() -> None:
    assert _loaded_after("import ngio_async; ngio_async.Limits(); ngio_async.NotFoundError") == []


def test_the_command_lines_help_loads_no_heavy_module() -> None:
    code = "from ngio_async.cli.main import main\nassert main(['--help']) == 0"
    assert _loaded_after(code) == []


def test_a_name_loads_its_module_on_first_use() -> None:
    assert "numpy" in _loaded_after("import ngio_async; ngio_async.open")
    # a subpackage, as ``ngio_async.meta.validate(doc)`` after a plain ``import ngio_async``
    assert "msgspec" not in HEAVY
    _loaded_after("import ngio_async; assert callable(ngio_async.meta.validate)")


def test_every_public_name_resolves_to_the_librarys_object() -> None:
    namespace: dict[str, object] = {}
    exec("from ngio_async import *", namespace)  # noqa: S102 - the star import users write
    public = set(ngio_async.__all__)
    assert public <= set(namespace)
    for name in public - {"__version__"}:
        obj = getattr(ngio_async, name)
        assert obj is namespace[name]
        assert getattr(obj, "__module__", "").startswith("ngio_async"), name
    assert public <= set(dir(ngio_async))


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'opne'"):
        ngio_async.opne  # type: ignore[attr-defined]  # noqa: B018


def test_the_lazy_table_and_the_type_checkers_imports_agree() -> None:
    """The names ``__init__`` imports for type checkers are exactly those it loads lazily."""
    tree = ast.parse(Path(ngio_async.__file__).read_text())
    typed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                typed |= {alias.asname or alias.name for alias in stmt.names}
    lazy = {name for names in ngio_async._LAZY.values() for name in names}
    assert typed == lazy
    eager = {n for n in ngio_async.__all__ if n in vars(ngio_async)}
    assert set(ngio_async.__all__) == lazy | eager


@pytest.mark.parametrize(
    "first",
    [
        "import ngio_async.convert",  # the subpackage of the same name loads first
        "from ngio_async.convert import is_complete",
        "import ngio_async; ngio_async.open; ngio_async.ConvertResult",
    ],
)
def test_ngio_async_convert_stays_the_function(first: str) -> None:
    code = (
        f"{first}\nimport types, ngio_async\n"
        "assert not isinstance(ngio_async.convert, types.ModuleType), ngio_async.convert\n"
        "assert ngio_async.convert.__name__ == 'convert' and callable(ngio_async.convert)\n"
        "from ngio_async.convert import convert\nassert convert is ngio_async.convert"
    )
    assert "numpy" in _loaded_after(code)


def test_a_function_using_the_package_pickles_with_cloudpickle() -> None:
    """dask.distributed ships a script's functions with cloudpickle: one that uses
    ``ngio_async`` takes the package along by reference, as any module."""
    import pickle

    import cloudpickle  # type: ignore[import-untyped]

    def uses_it() -> object:
        return ngio_async.Limits

    again = pickle.loads(cloudpickle.dumps(uses_it))
    assert again() is ngio_async.Limits
    assert pickle.loads(pickle.dumps(ngio_async)) is ngio_async
