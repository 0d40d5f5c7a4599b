"""The loopback test servers themselves (``tests/servers.py``): what they serve is what a real
static server would."""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


def test_static_server_decodes_a_path_once(http_root: Path, http_server: StaticServer) -> None:
    # the key a%20b (percent and all) is the URL path a%2520b; decoded twice it became "a b"
    (http_root / "a%20b").write_bytes(b"percent")
    (http_root / "a b").write_bytes(b"space")
    with urllib.request.urlopen(f"{http_server.url}a%2520b", timeout=10) as resp:
        assert resp.read() == b"percent"
    with urllib.request.urlopen(f"{http_server.url}a%20b", timeout=10) as resp:
        assert resp.read() == b"space"
    assert http_server.count("GET", "/a%20b") == 1
    assert http_server.count("GET", "/a b") == 1
