"""TLS verification on by default; credentials never in the clear to another host."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
import trustme

from aiotts import ConnectError, TaskStatus, TTSClient
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import tls_server_context

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_a_self_signed_server_is_refused_unless_its_ca_is_given(
    ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0)
    async with Emulator(config, ssl_context=tls_server_context(ca)) as emu:
        task_id = emu.create_tasks(1)[0]
        async with TTSClient(emu.client_id, emu.client_secret, base_url=emu.url) as client:
            with pytest.raises(ConnectError, match="TLS verification") as caught:
                await client.status(task_id)
        assert "ca_file" in str(caught.value)
        assert emu.stats().token_requests == 0  # the secret never left
        async with TTSClient(
            emu.client_id, emu.client_secret, base_url=emu.url, ca_file=ca_file
        ) as client:
            assert (await client.status(task_id)).status is TaskStatus.COMPLETED
            saved = await client.download(task_id, tmp_path)
        assert saved.path.read_bytes() == emu.audio(task_id)

        env = {k: v for k, v in os.environ.items() if not k.startswith("ASPOSE_")}
        env |= {"ASPOSE_CLIENT_ID": emu.client_id, "ASPOSE_CLIENT_SECRET": emu.client_secret}
        base = [sys.executable, "-m", "aiotts", "status", task_id, "--base-url", emu.url]
        refused = await anyio.run_process(base, env=env, check=False)
        trusted = await anyio.run_process([*base, "--ca-file", str(ca_file)], env=env, check=False)
    assert refused.returncode == 4
    assert b"--ca-file" in refused.stderr
    assert trusted.returncode == 0, trusted.stderr.decode()
    assert b"Completed" in trusted.stdout
