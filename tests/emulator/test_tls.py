"""HTTPS: the emulator with a self-signed certificate, in process and from the command line."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme

from aiotts.emulator import Emulator, EmulatorProcess
from tests.helpers import tls_server_context

from .conftest import TRIAL

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_https_emulator_is_trusted_only_with_its_ca(ca: trustme.CA) -> None:
    async with Emulator(ssl_context=tls_server_context(ca)) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(emu.url + TRIAL, params={"id": "x"})
            async with http.get(
                emu.url + TRIAL, params={"id": "x"}, ssl=client_context(ca)
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["taskStatus"] == "NotExist"


def test_tls_flags(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    with EmulatorProcess(
        extra_args=["--tls-cert", str(cert_file), "--tls-key", str(key_file)],
        admin_ssl=client_context(ca),
    ) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        assert emu.stats().count() == 0
