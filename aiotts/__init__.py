"""aiotts: an asyncio client for the Aspose.OCR Cloud v5.0 text-to-speech queue."""

from aiotts._errors import (
    AiottsError,
)

__all__ = [
    "AiottsError",
]

__version__ = "0.1.0"
