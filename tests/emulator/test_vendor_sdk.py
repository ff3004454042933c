"""Fidelity: the vendor's own SDK (aspose-ocr-cloud 24.11.0) works against the emulator.

The SDK is synchronous (urllib3), so its calls run in a worker thread while the emulator
serves on the test's event loop.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Callable
from typing import TypeVar

import aiohttp
import anyio
import pytest
from aspose_ocr_cloud.api.convert_text_to_speech_api import ConvertTextToSpeechApi
from aspose_ocr_cloud.api.convert_text_to_speech_trial_api import ConvertTextToSpeechTrialApi
from aspose_ocr_cloud.api.utilities_api import UtilitiesApi
from aspose_ocr_cloud.api_client import ApiClient
from aspose_ocr_cloud.configuration import Configuration
from aspose_ocr_cloud.exceptions import ApiException
from aspose_ocr_cloud.models.language_tts import LanguageTTS
from aspose_ocr_cloud.models.result_type_tts import ResultTypeTTS
from aspose_ocr_cloud.models.tts_body import TTSBody
from aspose_ocr_cloud.models.tts_response import TTSResponse
from aspose_ocr_cloud.models.tts_settings import TTSSettings
from aspose_ocr_cloud.models.tts_task_status import TTSTaskStatus

from aiotts.emulator import Emulator, EmulatorConfig, ManualClock, synthesize

from .conftest import get_token

pytestmark = pytest.mark.anyio

T = TypeVar("T")

TEXT = "The vendor's own client reads this text aloud."


async def in_thread(call: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(call)


def body(text: str = TEXT) -> TTSBody:
    # The SDK's own spelling; its pydantic model also accepts the alias resultType.
    settings = TTSSettings(language=LanguageTTS.ENGLISH, result_type=ResultTypeTTS.WAV)  # type: ignore[call-arg]
    return TTSBody(text=text, settings=settings)


def check_wav(response: TTSResponse, expected: bytes) -> None:
    assert response.task_status == TTSTaskStatus.COMPLETED
    assert response.results is not None
    assert response.results[0].type == "WavFile"
    data = response.results[0].data
    assert isinstance(data, str)
    wav = base64.b64decode(data)
    assert wav == expected
    with wave.open(io.BytesIO(wav)) as reader:
        assert reader.getnchannels() == 1
        assert reader.getframerate() == 22050
        assert reader.getsampwidth() == 3
        assert reader.getnframes() == (len(wav) - 44) // 3


async def test_sdk_submits_and_fetches_a_completed_result() -> None:
    clock = ManualClock()
    config = EmulatorConfig(pending_seconds=1, processing_seconds=1)
    async with Emulator(config, clock=clock) as emu, aiohttp.ClientSession() as http:
        token = await get_token(http, emu)
        api = ConvertTextToSpeechApi(ApiClient(Configuration(host=emu.url, access_token=token)))
        task_id = await in_thread(lambda: api.post_convert_text_to_speech(body()))
        assert isinstance(task_id, str)
        assert task_id.startswith("TTS")
        pending = await in_thread(lambda: api.get_convert_text_to_speech(id=task_id))
        assert isinstance(pending, TTSResponse)
        assert pending.task_status == TTSTaskStatus.PENDING
        assert pending.results is None
        assert pending.id == task_id
        clock.advance(1)
        processing = await in_thread(lambda: api.get_convert_text_to_speech(id=task_id))
        assert processing.task_status == TTSTaskStatus.PROCESSING
        clock.advance(1)
        done = await in_thread(lambda: api.get_convert_text_to_speech(id=task_id))
        check_wav(done, synthesize(TEXT))
        assert len(synthesize(TEXT)) > 44 + 66_150  # over a second of audio

        status = UtilitiesApi(ApiClient(Configuration(host=emu.url, access_token=token)))
        only = await in_thread(lambda: status.get_task_status(id=task_id))
        assert only.task_status == "Completed"
        assert only.results is None

        await in_thread(lambda: api.cancel_convert_text_to_speech(id=task_id))
        gone = await in_thread(lambda: api.get_convert_text_to_speech(id=task_id))
        assert gone.task_status == TTSTaskStatus.NOTEXIST


async def test_sdk_trial_endpoints() -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0)
    async with Emulator(config) as emu:
        api = ConvertTextToSpeechTrialApi(ApiClient(Configuration(host=emu.url)))
        task_id = await in_thread(lambda: api.post_convert_text_to_speech_trial(body()))
        done = await in_thread(lambda: api.get_convert_text_to_speech_trial(id=task_id))
        check_wav(done, synthesize(TEXT, watermark=True))
        await in_thread(lambda: api.cancel_convert_text_to_speech_trial(id=task_id))
        gone = await in_thread(lambda: api.get_convert_text_to_speech_trial(id=task_id))
        assert gone.task_status == TTSTaskStatus.NOTEXIST


async def test_sdk_sees_error_results_and_401s() -> None:
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, error_messages=("nope",))
    async with Emulator(config) as emu:
        [task_id] = emu.create_tasks(["fails"], fail=True)
        api = ConvertTextToSpeechApi(
            ApiClient(Configuration(host=emu.url, access_token=emu.issue_token()))
        )
        failed = await in_thread(lambda: api.get_convert_text_to_speech(id=task_id))
        assert failed.task_status == TTSTaskStatus.ERROR
        assert failed.error is not None
        assert failed.error.messages == ["nope"]
        emu.expire_tokens()
        with pytest.raises(ApiException) as caught:
            await in_thread(lambda: api.get_convert_text_to_speech(id=task_id))
        assert caught.value.status == 401
