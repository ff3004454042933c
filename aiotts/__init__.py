"""aiotts: an asyncio client for the Aspose.OCR Cloud v5.0 text-to-speech queue.

Submit texts, then fetch thousands of results at once, each streamed from the response
straight to a WAV file on disk::

    async with TTSClient() as client:          # ASPOSE_CLIENT_ID / ASPOSE_CLIENT_SECRET
        async for outcome in client.fetch_many(ids, "audio/"):
            print(outcome.task_id, outcome.state, outcome.files)

``aiotts.sync.TTSClient`` is the same client for code that is not async (scripts,
notebooks, Airflow or Celery tasks). ``aiotts.emulator`` is a local emulator of the API,
for tests and demos.
"""

import importlib.metadata as _metadata

from aiotts._batch import Batch, BatchReport, BatchStatistics
from aiotts._client import TRIAL_MAX_CHARS, SavedAudio, TTSClient
from aiotts._config import (
    DEFAULT_BASE_URL,
    DEFAULT_LIMITS,
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    Limits,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from aiotts._errors import (
    AiottsError,
    ApiError,
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    CredentialsError,
    DecodeError,
    OutputError,
    RequestTimeout,
    ResponseError,
    ServerError,
    SubmitUncertainError,
    TaskError,
    TaskFailedError,
    TaskNotFoundError,
    TaskNotReadyError,
    TaskTimeoutError,
    TokenRateLimitedError,
    TokenUnavailableError,
    TransientError,
    TrialLimitError,
    UnexpectedStatusError,
    UsageError,
)
from aiotts._hooks import (
    FileWritten,
    Hooks,
    RateChanged,
    RequestFinished,
    RetryScheduled,
    TaskStateChanged,
    Throttled,
    TokenRefreshed,
)
from aiotts._manifest import ManifestEntry, read_manifest
from aiotts._models import AudioResult, Outcome, OutcomeState, TaskResult, TaskStatus
from aiotts._shards import Shard, shard_from_environment, shard_of, take_shard
from aiotts._submit import Submissions, Submitted
from aiotts._synthesize import Synthesis

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LIMITS",
    "DEFAULT_POLL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "TRIAL_MAX_CHARS",
    "AiottsError",
    "ApiError",
    "AudioResult",
    "AuthenticationError",
    "Batch",
    "BatchReport",
    "BatchStatistics",
    "ClientClosedError",
    "ConnectError",
    "CredentialsError",
    "DecodeError",
    "FileWritten",
    "Hooks",
    "Limits",
    "ManifestEntry",
    "Outcome",
    "OutcomeState",
    "OutputError",
    "PollPolicy",
    "RateChanged",
    "RequestFinished",
    "RequestTimeout",
    "ResponseError",
    "RetryPolicy",
    "RetryScheduled",
    "SavedAudio",
    "ServerError",
    "Shard",
    "Submissions",
    "SubmitUncertainError",
    "Submitted",
    "Synthesis",
    "TTSClient",
    "TaskError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskNotReadyError",
    "TaskResult",
    "TaskStateChanged",
    "TaskStatus",
    "TaskTimeoutError",
    "Throttled",
    "Timeouts",
    "TokenRateLimitedError",
    "TokenRefreshed",
    "TokenUnavailableError",
    "TransientError",
    "TrialLimitError",
    "UnexpectedStatusError",
    "UsageError",
    "read_manifest",
    "shard_from_environment",
    "shard_of",
    "take_shard",
]


def _version() -> str:
    """The installed distribution's version: pyproject.toml holds the one version string."""
    try:
        return _metadata.version("aiotts")
    except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _version()
