"""Loopback test servers: a static HTTP file server with Range support and fault injection.

The server runs an aiohttp app on its own event loop in a background thread, bound to
127.0.0.1 on a free port. Tests tell it to misbehave through :class:`Faults` and read back what
it saw (requests, peak concurrency).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import hmac
import ipaddress
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, NamedTuple, Self
from urllib.parse import urlencode

from aiohttp import ClientSession, web

__all__ = [
    "AzuriteServer",
    "FaultProxy",
    "Faults",
    "HangUpServer",
    "S3Server",
    "SeenRequest",
    "StaticServer",
    "azurite_missing",
    "keep_loop_complaints",
    "start_azurite",
]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def keep_loop_complaints(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Route what a test server's own event loop reports (an aiohttp handler task of a client
    that hung up, collected while pending; an error in a server callback) into the returned list
    instead of the ``asyncio`` logger. The suite checks that logger for what the library leaves
    behind, and a collection started anywhere in the process (``gc.collect()`` in a test) finds a
    server's garbage too, reporting it as if the library had left it."""
    complaints: list[str] = []

    def keep(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        complaints.append(str(context.get("message", context)))

    loop.set_exception_handler(keep)
    return complaints


@dataclass
class Faults:
    """How the server misbehaves. All off by default.

    :param status: answer this HTTP status instead of serving the file ...
    :param status_times: ... this many times, then serve normally (``-1``: always).
    :param short: answer ranged GETs with ``206`` and honest headers, but only the first half
        of the asked-for bytes.
    :param drop: promise the full ``Content-Length``, send half of the body, close the connection
        ... ``drop_times`` times (``-1``: always), then serve normally.
    :param ignore_range: ignore ``Range`` and answer ``200`` with the whole file.
    :param delay: seconds to wait before answering.
    :param no_head: answer ``405`` to ``HEAD``.
    :param retry_after: a ``Retry-After`` header sent with the injected ``status``.
    :param no_validators: send no ``ETag`` / ``Last-Modified`` (sent by default, as nginx
        and S3 do: from the file's mtime and size).
    :param gzip_stored: serve files as stored gzip-compressed with ``Content-Encoding: gzip``
        (an S3 object uploaded with that header): whatever the client accepts, bodies and
        ranges are of the compressed bytes.
    """

    status: int | None = None
    status_times: int = 0
    short: bool = False
    drop: bool = False
    drop_times: int = -1
    ignore_range: bool = False
    delay: float = 0.0
    no_head: bool = False
    gzip_stored: bool = False
    retry_after: str | None = None
    no_validators: bool = False


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server with one bucket."""

    endpoint: str
    bucket: str
    access_key_id: str = "testing-key"
    secret_access_key: str = "testing-secret"
    region: str = "us-east-1"

    def options(self) -> dict[str, Any]:
        """``open_store`` options that reach this server."""
        return {
            "endpoint": self.endpoint,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "region": self.region,
        }

    def fresh_url(self) -> str:
        """An ``s3://`` URL under a new, empty prefix (tests share the bucket)."""
        return f"s3://{self.bucket}/t-{uuid.uuid4().hex[:12]}"


class SeenRequest(NamedTuple):
    method: str
    path: str
    range: str | None
    agent: str = ""  # the User-Agent header: tells the clients apart


@dataclass
class StaticServer:
    """Serve ``root`` over HTTP on 127.0.0.1 (``url`` ends with ``/``)."""

    root: Path
    faults: Faults = field(default_factory=Faults)
    requests: list[SeenRequest] = field(default_factory=list)
    raw_targets: list[str] = field(default_factory=list)  # request targets as sent, with queries
    in_flight: int = 0
    peak_in_flight: int = 0
    port: int = 0
    ssl_context: ssl.SSLContext | None = None  # serve HTTPS with this context

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None  # set by stop(): injected delays end
        self._root: Path | None = None  # root, resolved
        self._resolved: dict[str, Path | None] = {}  # request path -> file (None: outside)
        self.loop_complaints: list[str] = []  # what the server's loop reported (not logged)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/"

    # -- test-side helpers ------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.raw_targets.clear()
            self.peak_in_flight = self.in_flight
            self.faults = Faults()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen, optionally only of ``method`` and/or for ``path`` (``/a/b``)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            )

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self.loop_complaints = keep_loop_complaints(loop)
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except Exception as exc:  # noqa: BLE001 - reported to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="static-http-server", daemon=True)
        self._thread.start()
        if not ready.wait(10) or errors:
            raise RuntimeError(f"test HTTP server did not start: {errors}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            if self._stopping is not None:  # requests held by a delay are answered now
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    # -- request handling -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            path = request.path  # decoded once by aiohttp: a%2520b is the file a%20b
            self.requests.append(
                SeenRequest(
                    request.method,
                    path,
                    request.headers.get("Range"),
                    request.headers.get("User-Agent", ""),
                )
            )
            self.raw_targets.append(request.raw_path)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            faults = self.faults
        try:
            if faults.delay:
                assert self._stopping is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), faults.delay)
                if self._stopping.is_set():  # the server stops: its cleanup waits for us
                    return web.Response(status=503, text="stopping")
            return await self._answer(request, path, faults)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _resolve(self, path: str) -> Path | None:
        """The file a request path names, ``None`` outside ``root``; each path resolved once
        (resolving it on every request was 40% of the server's time in the tile sweeps)."""
        try:
            return self._resolved[path]
        except KeyError:
            pass
        if self._root is None:
            self._root = self.root.resolve()
        file: Path | None = (self.root / path.lstrip("/")).resolve()
        if file is not None and not file.is_relative_to(self._root):
            file = None
        self._resolved[path] = file
        return file

    def _take_status_fault(self, faults: Faults) -> int | None:
        with self._lock:
            if faults.status is None or faults.status_times == 0:
                return None
            if faults.status_times > 0:
                faults.status_times -= 1
            return faults.status

    def _take_drop(self, faults: Faults) -> bool:
        with self._lock:
            if not faults.drop or faults.drop_times == 0:
                return False
            if faults.drop_times > 0:
                faults.drop_times -= 1
            return True

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405)
        if request.method == "HEAD" and faults.no_head:
            return web.Response(status=405)
        status = self._take_status_fault(faults)
        if status is not None:
            extra = {"Retry-After": faults.retry_after} if faults.retry_after else None
            return web.Response(status=status, text=f"injected {status}", headers=extra)
        file = self._resolve(path)
        if file is None or not file.is_file():
            return web.Response(status=404, text="not found")
        stat = file.stat()
        data = file.read_bytes()  # small test files; the server loop is not under test
        if faults.gzip_stored:
            data = gzip.compress(data, mtime=0)
        size = len(data)
        validators = {} if faults.no_validators else {
            "ETag": f'"{stat.st_mtime_ns:x}-{size:x}"',
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        }  # fmt: skip

        spec = request.headers.get("Range")
        match = _RANGE.match(spec or "")
        if match is None or faults.ignore_range or (not match[1] and not match[2]):
            return await self._send(request, 200, data, validators, faults)
        if match[1]:
            first = int(match[1])
            last = min(int(match[2]), size - 1) if match[2] else size - 1
        else:
            first, last = max(0, size - int(match[2])), size - 1
        if first >= size or last < first:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        if faults.short:
            last = first + (last - first + 1) // 2 - 1
        headers = {"Content-Range": f"bytes {first}-{last}/{size}", **validators}
        return await self._send(request, 206, data[first : last + 1], headers, faults)

    async def _send(
        self,
        request: web.Request,
        status: int,
        body: bytes,
        headers: dict[str, str],
        faults: Faults,
    ) -> web.StreamResponse:
        headers = {"Accept-Ranges": "bytes", **headers}
        if faults.gzip_stored:
            headers["Content-Encoding"] = "gzip"
        if not self._take_drop(faults) or request.method == "HEAD" or len(body) < 2:
            return web.Response(status=status, body=body, headers=headers)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        assert request.transport is not None
        request.transport.close()  # the client sees the connection drop mid-body
        return resp


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 with a fresh self-signed certificate, and the
    certificate's PEM file (to trust it as a CA)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = directory / "cert.pem"
    key_pem = directory / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_pem, key_pem)
    return context, cert_pem


# -- Azurite: Microsoft's Azure Blob Storage emulator (npm package ``azurite``) ---------------

AZURITE_ACCOUNT = "devstoreaccount1"
# the emulator's published, well-known account key (the same for every Azurite)
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# where ``make azurite`` installs it (git-ignored)
AZURITE_BIN = (
    Path(__file__).resolve().parent.parent / ".cache/azurite/node_modules/.bin/azurite-blob"
)
_AZURITE_LISTENS = re.compile(r"successfully listens on (http://[\d.]+:\d+)")


def azurite_missing() -> str | None:
    """Why Azurite cannot run here (``None`` when it can)."""
    if shutil.which("node") is None:
        return "node is not on PATH (Azurite, the Azure Blob emulator, runs on node)"
    if not AZURITE_BIN.is_file():
        return f"Azurite is not installed at {AZURITE_BIN} (`make azurite` installs it from npm)"
    return None


@dataclass
class AzuriteServer:
    """A running Azurite blob service on 127.0.0.1 (in memory, no telemetry) with one
    container. ``options()`` are the ``open_store`` options that reach it."""

    endpoint: str  # http://127.0.0.1:<port>
    container: str
    process: subprocess.Popen[bytes] | None = None

    def options(self) -> dict[str, Any]:
        """``az://`` options: the emulator's account at this endpoint."""
        return {"use_emulator": True, "endpoint": self.endpoint}

    def fresh_url(self) -> str:
        """An ``az://`` URL under a new, empty prefix (tests share the container)."""
        return f"az://{self.container}/t-{uuid.uuid4().hex[:12]}"

    def blob_url(self, path: str) -> str:
        """The emulator's http URL of ``container/path`` (path-style: the account first)."""
        return f"{self.endpoint}/{AZURITE_ACCOUNT}/{path}"

    def create_container(self, name: str) -> None:
        """Create the container ``name`` (a Shared Key signed ``PUT ?restype=container``)."""
        date = formatdate(usegmt=True)
        headers = {
            "x-ms-date": date,
            "x-ms-version": "2021-08-06",
            "Content-Type": "application/octet-stream",
        }
        # VERB, Content-Encoding, -Language, -Length, -MD5, -Type, Date, If-Modified-Since,
        # If-Match, If-None-Match, If-Unmodified-Since, Range; headers; resource
        signed = "\n".join(
            [
                *("PUT", "", "", "", "", headers["Content-Type"], "", "", "", "", "", ""),
                *(f"x-ms-date:{date}", "x-ms-version:2021-08-06"),
                *(f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}", "restype:container"),
            ]
        )
        digest = hmac.new(base64.b64decode(AZURITE_KEY), signed.encode(), hashlib.sha256)
        headers["Authorization"] = (
            f"SharedKey {AZURITE_ACCOUNT}:{base64.b64encode(digest.digest()).decode()}"
        )
        request = urllib.request.Request(
            f"{self.blob_url(name)}?restype=container", data=b"", method="PUT", headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201, response.status

    def container_sas(self, permissions: str = "rl") -> str:
        """A service SAS query string (``sv=...&sig=...``) for this container."""
        version, expiry = "2021-08-06", "2099-01-01T00:00:00Z"
        resource = f"/blob/{AZURITE_ACCOUNT}/{self.container}"
        # permissions, start, expiry, resource, identifier, IP, protocol, version, "c"
        # (a container), snapshot time, encryption scope and five response headers
        fields = [permissions, "", expiry, resource, "", "", "", version, "c", *[""] * 7]
        digest = hmac.new(base64.b64decode(AZURITE_KEY), "\n".join(fields).encode(), hashlib.sha256)
        query = {"sv": version, "se": expiry, "sr": "c", "sp": permissions}
        return urlencode({**query, "sig": base64.b64encode(digest.digest()).decode()})

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_azurite(workdir: Path, container: str = "ngio-test") -> AzuriteServer:
    """Start Azurite's blob service on a free loopback port (the port it reports), in
    memory and without telemetry, and create ``container``. ``workdir`` holds its log."""
    log_path = workdir / "azurite.log"
    command = [
        str(AZURITE_BIN),
        "--inMemoryPersistence",
        "--extentMemoryLimit",
        "256",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        "0",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--silent",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = AzuriteServer(endpoint="", container=container, process=process)
    deadline = time.monotonic() + 60
    while True:
        match = _AZURITE_LISTENS.search(log_path.read_text(errors="replace"))
        if match is not None:
            server.endpoint = match[1]
            break
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"Azurite did not start: {log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    try:
        server.create_container(container)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class FaultProxy(StaticServer):
    """A reverse proxy on 127.0.0.1 to ``target`` (``http://host:port``) that answers the
    injected ``faults.status`` (``status_times`` times; only to ``fault_methods`` when set)
    instead of forwarding, cuts answers off with ``faults.drop`` and records every request as
    :class:`StaticServer` does. Requests are forwarded unchanged (path, query, headers, body),
    so signed requests stay valid."""

    target: str = ""
    fault_methods: frozenset[str] | None = None

    def stop(self) -> None:
        session = getattr(self, "_session", None)
        if session is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(session.close(), self._loop).result(10)
        super().stop()

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if self.fault_methods is None or request.method in self.fault_methods:
            status = self._take_status_fault(faults)
            if status is not None:
                extra = {"Retry-After": faults.retry_after} if faults.retry_after else None
                return web.Response(status=status, text=f"injected {status}", headers=extra)
        if getattr(self, "_session", None) is None:
            self._session = ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method,
            self.target + request.raw_path,
            headers=headers,  # with the body's Content-Length: streamed, of any size
            data=request.content if request.body_exists else None,
            allow_redirects=False,
            skip_auto_headers=_AUTO_HEADERS,  # headers the client signed, and no others
        ) as upstream:
            body = await upstream.read()
            answer = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
            if request.method == "HEAD":  # the object's size, with no body
                head = web.StreamResponse(status=upstream.status, headers=answer)
                await head.prepare(request)
                return head
            answer.pop("Content-Length", None)
            return await self._send(request, upstream.status, body, answer, faults)  # drops


_AUTO_HEADERS = ("Content-Type", "User-Agent", "Accept", "Accept-Encoding")
_HOP_HEADERS = frozenset(
    ["host", "connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"]
)


class HangUpServer:
    """A TCP server on 127.0.0.1 that reads each request and closes the connection without
    an answer (a reset before the response); ``count`` is the connections it took."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.count = 0
        self._thread = threading.Thread(target=self._serve, name="hang-up-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:  # closed by stop()
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                self.count += 1

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self._socket.close()
        self._thread.join(5)
