"""A real Azurite blob server on 127.0.0.1 for the tests: started, waited for, stopped.

``oauth=True`` serves HTTPS with a self-signed certificate and accepts Entra ID bearer tokens
(Azurite's ``--oauth basic``: issuer, audience and lifetime are checked, not the signature);
:func:`identity_endpoint` issues such tokens the way App Service's managed identity does, so
azure-identity's ``DefaultAzureCredential`` runs its real managed-identity code path.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / ".cache" / "node" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's built-in development key: public, documented, and only valid against the emulator.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connection_string(port: int, key: str = KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


class Azurite:
    """One azurite-blob process; ``stop``/``start`` again keep the port (to test outages)."""

    def __init__(self, workdir: Path, oauth: bool = False) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: run `make test`, which installs azurite with npm")
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.cert: Path | None = None
        self.tls: list[str] = []
        if oauth:
            workdir.mkdir(parents=True, exist_ok=True)
            self.cert, key = self_signed_certificate(workdir)
            self.tls = ["--cert", str(self.cert), "--key", str(key), "--oauth", "basic"]

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.cert else 'http'}://127.0.0.1:{self.port}/{ACCOUNT}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(BINARY),
                *self.tls,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.workdir),
                "--skipApiVersionCheck",  # the SDK's API version is newer than Azurite's list
                "--disableTelemetry",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("azurite did not start within 30 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@contextmanager
def running(workdir: Path, oauth: bool = False) -> Iterator[Azurite]:
    server = Azurite(workdir, oauth=oauth)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), valid for a day: clients trust it by
    ``REQUESTS_CA_BUNDLE``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _jwt(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{part({'sig': 'unchecked by azurite'})}"


@contextmanager
def identity_endpoint(lifetime_s: int = 3600) -> Iterator[tuple[dict[str, str], list[str]]]:
    """App Service's managed-identity endpoint on 127.0.0.1: yields the environment that points
    azure-identity at it, and the list of resources it issued tokens for (one per request)."""
    header = secrets.token_hex(8)
    issued: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            resource = parse_qs(urlparse(self.path).query).get("resource", [""])[0]
            if self.headers.get("X-IDENTITY-HEADER") != header or not resource:
                self.send_response(401)
                self.end_headers()
                return
            now = int(time.time())
            claims = {"aud": resource, "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000001/"}
            claims |= {"nbf": now - 60, "iat": now - 60, "exp": now + lifetime_s, "oid": "test-identity"}
            body = {"access_token": _jwt(claims), "expires_on": str(now + lifetime_s), "resource": resource}
            data = json.dumps(body | {"token_type": "Bearer"}).encode()
            issued.append(resource)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{server.server_port}/msi/token", "IDENTITY_HEADER": header}
    try:
        yield env, issued
    finally:
        server.shutdown()
        server.server_close()
