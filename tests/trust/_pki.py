"""A throwaway two-level PKI for trust and client tests (root → ORG CA → leaves), plus a CRL server.

Leaves may also name an OCSP responder (AIA); the server then answers POSTs with a handler
(``post_routes``), and :meth:`MiniPKI.ocsp_response` builds signed OCSP responses.

Shaped like IGC Santé (root without CRL DP; the ORG CA names the root's CRL; leaves name the
ORG CA's CRL). CA keys are P-256 for speed; leaves share one RSA-2048 key so that the Ref #2
ECDHE-RSA cipher baseline can be negotiated over TLS 1.2.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

NOW = datetime.now(UTC).replace(microsecond=0)
_LEAF_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MSSANTE TESTS"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "SIMULATION"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass
class Issued:
    cert: x509.Certificate
    key: Key
    cert_path: Path
    key_path: Path

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


class MiniPKI:
    def __init__(self, directory: Path, crl_base_url: str, *, label: str = "SIM") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.base = crl_base_url.rstrip("/")
        self.label = label
        self.root = self._ca(f"TEST AC RACINE {label}", None, crl_url=None)
        self.org = self._ca(f"TEST AC ORGANISATIONS {label}", self.root, crl_url=self.crl_url("root"))

    def crl_url(self, name: str) -> str:
        return f"{self.base}/{self.label.lower()}-{name}.crl"

    def _write(self, stem: str, cert: x509.Certificate, key: Key) -> Issued:
        cert_path = self.dir / f"{stem}.pem"
        key_path = self.dir / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return Issued(cert, key, cert_path, key_path)

    def _ca(self, cn: str, parent: Issued | None, *, crl_url: str | None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(parent.cert.subject if parent else _name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=30))
            .not_valid_after(NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if crl_url is not None:
            builder = builder.add_extension(_dp(crl_url), critical=False)
        signer = parent.key if parent else key
        cert = builder.sign(signer, hashes.SHA256())
        return self._write(cn.replace(" ", "_"), cert, key)

    def leaf(
        self,
        stem: str,
        *,
        dns_names: Iterable[str] = ("localhost",),
        client: bool = False,
        issuer: Issued | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        crl_url: str | None = "default",
        ocsp_url: str | None = None,
    ) -> Issued:
        issuer = issuer or self.org
        names = list(dns_names)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(stem))
            .issuer_name(issuer.cert.subject)
            .public_key(_LEAF_KEY.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - timedelta(days=1))
            .not_valid_after(not_after or NOW + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
        if crl_url == "default":
            crl_url = self.crl_url("org" if issuer is self.org else "root")
        if crl_url is not None:
            builder = builder.add_extension(_dp(crl_url), critical=False)
        if ocsp_url is not None:
            aia = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
            builder = builder.add_extension(x509.AuthorityInformationAccess([aia]), critical=False)
        cert = builder.sign(issuer.key, hashes.SHA256())
        return self._write(stem, cert, _LEAF_KEY)

    def ocsp_responder(self, stem: str, *, issuer: Issued | None = None, ocsp_signing: bool = True) -> Issued:
        """A delegated OCSP responder certificate (RFC 6960 §4.2.2.2), with or without id-kp-OCSPSigning."""
        issuer = issuer or self.org
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(stem))
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(issuer.key, hashes.SHA256())
        )
        return self._write(stem, cert, key)

    def ocsp_response(
        self,
        cert: x509.Certificate,
        issuer: Issued | None = None,
        *,
        status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
        responder: Issued | None = None,
        signer: Key | None = None,
        this_update: datetime | None = None,
        next_update: datetime | None = None,
        without_next_update: bool = False,
        nonce: bytes | None = None,
    ) -> bytes:
        """A signed OCSP response about ``cert``: by ``issuer`` (default the ORG CA) or by ``responder``.

        ``signer`` replaces the signing key (a forgery: the ResponderID still names the issuer, by name).
        """
        issuer = issuer or self.org
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=cert,
            issuer=issuer.cert,
            algorithm=hashes.SHA1(),
            cert_status=status,
            this_update=this_update or NOW - timedelta(minutes=10),
            next_update=None if without_next_update else next_update or NOW + timedelta(hours=4),
            revocation_time=NOW - timedelta(minutes=30) if status is ocsp.OCSPCertStatus.REVOKED else None,
            revocation_reason=None,
        )
        named = responder or issuer
        if signer is None:
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, named.cert)
        else:  # an impostor with the same name as the real signer, and its own key
            impostor = (
                x509.CertificateBuilder()
                .subject_name(named.cert.subject)
                .issuer_name(named.cert.subject)
                .public_key(signer.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(NOW - timedelta(days=1))
                .not_valid_after(NOW + timedelta(days=1))
                .sign(signer, hashes.SHA256())
            )
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, impostor)
        if responder is not None:
            builder = builder.certificates([responder.cert])
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        signed = builder.sign(signer or named.key, hashes.SHA256())
        return signed.public_bytes(serialization.Encoding.DER)

    def crl(
        self,
        issuer: Issued,
        revoked: Iterable[x509.Certificate] = (),
        *,
        this_update: datetime | None = None,
        next_update: datetime | None = None,
        signer: Key | None = None,
    ) -> bytes:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.cert.subject)
            .last_update(this_update or NOW - timedelta(hours=1))
            .next_update(next_update or NOW + timedelta(days=7))
        )
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(NOW - timedelta(minutes=30))
                .build()
            )
        return builder.sign(signer or issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def bundle(self, *cas: Issued, name: str = "bundle.pem") -> Path:
        path = self.dir / name
        path.write_bytes(
            b"".join(ca.cert.public_bytes(serialization.Encoding.PEM) for ca in cas or (self.root, self.org))
        )
        return path


def _dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)])


class CRLServer:
    """A tiny HTTP server on 127.0.0.1 serving ``routes[path] = bytes`` (404 otherwise), in a thread."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.hits: list[str] = []
        #: POST handlers (OCSP responders): ``post_routes[path](body) -> response bytes``.
        self.post_routes: dict[str, Callable[[bytes], bytes]] = {}
        self.posts: list[tuple[str, str, bytes]] = []  # (path, Content-Type, body)
        routes, hits, post_routes, posts = self.routes, self.hits, self.post_routes, self.posts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                posts.append((self.path, self.headers.get("Content-Type", ""), body))
                handler = post_routes.get(self.path)
                if handler is None:
                    self.send_error(404)
                    return
                answer = handler(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def publish(self, url: str, data: bytes) -> None:
        self.routes[url.removeprefix(self.base_url)] = data

    def unpublish(self, url: str) -> None:
        self.routes.pop(url.removeprefix(self.base_url), None)

    @contextmanager
    def running(self) -> Iterator[CRLServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


class Responder:
    """The OCSP responder of the test PKI: ``answer(request DER) -> response DER``, set per test."""

    path = "/ocsp"

    def __init__(self, server: CRLServer) -> None:
        self.server = server
        self.url = server.base_url + self.path
        self.answer: Callable[[bytes], bytes] | None = None

    def serve(self, answer: Callable[[bytes], bytes]) -> None:
        self.answer = answer
        self.server.post_routes[self.path] = answer

    def down(self) -> None:
        self.server.post_routes.pop(self.path, None)  # 404

    @property
    def requests(self) -> list[bytes]:
        return [body for path, _, body in self.server.posts if path == self.path]


def fixed(data: bytes) -> Callable[[bytes], bytes]:
    """An OCSP answer that ignores the request."""
    return lambda _request: data
