"""Fixtures of the trust tests: a CRL server on loopback and a throwaway PKI naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trust._pki import CRLServer, MiniPKI, Responder


@pytest.fixture(scope="session")
def crl_server() -> Iterator[CRLServer]:
    with CRLServer().running() as server:
        yield server


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory, crl_server: CRLServer) -> MiniPKI:
    return MiniPKI(Path(tmp_path_factory.mktemp("pki")), crl_server.base_url)


@pytest.fixture
def published(pki: MiniPKI, crl_server: CRLServer) -> Iterator[CRLServer]:
    """Publish fresh, empty CRLs of both CAs for the duration of a test."""
    crl_server.routes.clear()
    crl_server.hits.clear()
    crl_server.publish(pki.crl_url("root"), pki.crl(pki.root))
    crl_server.publish(pki.crl_url("org"), pki.crl(pki.org))
    yield crl_server
    crl_server.routes.clear()
    crl_server.hits.clear()


@pytest.fixture
def responder(published: CRLServer) -> Iterator[Responder]:
    """The OCSP responder of the test PKI on the loopback server, answering 404 until ``serve``."""
    published.post_routes.clear()
    published.posts.clear()
    yield Responder(published)
    published.post_routes.clear()
    published.posts.clear()
