"""A local HTTPS server that answers like Azure, with the official example payloads.

The Azure SDKs refuse to send a bearer token over plain HTTP (azure-core's
``BearerTokenCredentialPolicy`` raises for non-https URLs). Rather than switching that
check off, the stub serves TLS with a self-signed certificate made here with
``cryptography`` (for 127.0.0.1 and localhost), and the sources are given that certificate
as their CA bundle (``connection_verify=<cert path>``): the real client stack, TLS and
bearer authentication included, runs unchanged and nothing is left unverified.

``route(path_part, *responses)`` scripts the answers for request paths containing
``path_part`` (served in order; the last one repeats); ``respond(path_part, responder)``
answers them with ``responder(request)`` instead, for a stand-in that computes its answer
from the request as the service does (tests/azure_monitor_stub.py). Every request is
recorded in ``requests`` (method, path, query, headers, JSON body). Unrouted paths get an
ARM-style 404.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "FIXTURES",
    "AzureStub",
    "RecordedRequest",
    "Responder",
    "StaticCredential",
    "StubResponse",
    "example",
    "make_certificate",
    "metrics_batch_body",
]

FIXTURES = Path(__file__).parent / "fixtures" / "azure"


def example(relative: str) -> dict[str, Any]:
    """One official x-ms-examples file, e.g. ``costmanagement/SubscriptionQuery.json``."""
    loaded: dict[str, Any] = json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    return loaded


def metrics_batch_body(metrics_list_body: dict[str, Any], resource_id: str) -> dict[str, Any]:
    """Wrap an ARM ``Metrics_List`` answer (GetMetric.json) in the data-plane
    ``metrics:getBatch`` envelope that ``MetricsClient`` reads: ``{"values": [...]}`` with
    ``starttime``/``endtime`` instead of ``timespan`` and the ``resourceid``. The metric
    objects themselves (value, timeseries, errorCode) are the same schema and kept as is."""
    start, end = metrics_list_body["timespan"].split("/")
    entry = {k: v for k, v in metrics_list_body.items() if k not in ("timespan", "cost")}
    entry.update(starttime=start, endtime=end, resourceid=resource_id)
    return {"values": [entry]}


class StaticCredential:
    """A ``TokenCredential`` that hands out a fixed token and records the scopes asked for."""

    def __init__(self, token: str = "stub-token") -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, 4_102_444_800)  # 2100-01-01: never refreshed in a test


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (also usable as its own CA bundle) and key, in PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inferplane azure stub")])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "stub-cert.pem", directory / "stub-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class StubResponse:
    """One scripted answer; ``body`` None means no body (e.g. 204)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """What the stub received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


Responder = Callable[[RecordedRequest], StubResponse]


class AzureStub:
    """The HTTPS server; use as a context manager. ``url`` is its base URL and
    ``ca_bundle`` the certificate to pass as ``connection_verify``."""

    def __init__(self, directory: Path) -> None:
        self.ca_bundle, key_path = make_certificate(directory)
        self.requests: list[RecordedRequest] = []
        self._routes: list[tuple[str, list[StubResponse] | Responder]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, key_path)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> AzureStub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def route(self, path_part: str, *responses: StubResponse) -> None:
        """Answer requests whose path contains ``path_part`` with ``responses`` in order."""
        with self._lock:
            self._routes.append((path_part, list(responses)))

    def respond(self, path_part: str, responder: Responder) -> None:
        """Answer requests whose path contains ``path_part`` with ``responder(request)``."""
        with self._lock:
            self._routes.append((path_part, responder))

    def answer(self, request: RecordedRequest) -> StubResponse:
        with self._lock:
            self.requests.append(request)
            for part, responses in self._routes:
                if part not in request.path:
                    continue
                if callable(responses):
                    return responses(request)
                scripted = responses.pop(0) if len(responses) > 1 else responses[0]
                return _refuse_unasked_splits(request, scripted)
        error = {"error": {"code": "NotFound", "message": f"no stub route for {request.path}"}}
        return StubResponse(404, error)


def _refuse_unasked_splits(request: RecordedRequest, response: StubResponse) -> StubResponse:
    """A scripted metrics answer split by a dimension the request's filter does not name is
    one Azure never sends (it answers one unsplit series; MetricBatchExample.json splits by
    exactly the dimensions its filter names): a 500 naming it, so no test passes on it."""
    if "metrics:getBatch" not in request.path or response.status != 200:
        return response
    asked = " ".join(request.query.get("filter", [])).lower()
    for value in response.body.get("values", []):
        for metric in value.get("value") or []:
            for series in metric.get("timeseries") or []:
                for meta in series.get("metadatavalues") or []:
                    dimension = meta["name"]["value"].lower()
                    if not re.search(rf"\b{re.escape(dimension)}\s+eq\b", asked):
                        message = f"stub: Azure splits by {dimension!r} only when the filter names it"
                        return StubResponse(500, {"error": {"code": "StubInfidelity", "message": message}})
    return response


def _handler_for(stub: AzureStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            recorded = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw else None,
            )
            response = stub.answer(recorded)
            payload = b"" if response.body is None else json.dumps(response.body).encode()
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
