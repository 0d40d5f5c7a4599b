"""Regressions found by running ``ngio-async serve`` as a user does (a real server process)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _raw(host: str, port: int, request: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_request_is_one_log_line(tmp_path: Path) -> None:
    """A client sending a header line without CR made the server print aiohttp's traceback,
    quoting the raw request bytes (an Authorization header among them) on stderr."""
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(url, shape=(64, 64), dtype="uint8", axes="yx") as ds:
        ds.write(np.zeros((64, 64), "uint8"))
    code = "import sys; from ngio_async.cli.main import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "serve", url, "--port", "0", "--name", "img"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base = next(ln.split(" at ")[1].strip() for ln in proc.stdout if ln.startswith("serving"))
        where = urlsplit(base)
        assert where.hostname is not None and where.port is not None
        answer = _raw(
            where.hostname,
            where.port,
            b"GET /api/datasets HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Basic c2VjcmV0\nX-Broken: yes\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0]
        with urllib.request.urlopen(f"{base}api/datasets", timeout=10) as resp:  # still serving
            assert [d["name"] for d in json.load(resp)["datasets"]] == ["img"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 130), err
    assert "stopping (Ctrl-C again to stop at once)" in err.splitlines()  # the first Ctrl-C
    assert "Traceback" not in err and "c2VjcmV0" not in err, err
    report = [ln for ln in err.splitlines() if "BadHttpMessage" in ln]
    assert len(report) == 1, err
    assert report[0].startswith("ngio-async: error: Error handling request"), err
