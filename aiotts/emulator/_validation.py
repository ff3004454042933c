"""The submit body's validation, answered the way ASP.NET answers (pure, no I/O).

Mirrors the service's framework: property names match case-insensitively, enum values match
case-insensitively, unknown keys are ignored, missing settings mean English/Wav, and a
blank text fails ``[Required]``. Failures become a problem-details body whose ``errors``
maps a field (or JSON path) to its messages.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

__all__ = ["parse_submit", "problem_body"]

_ENUMS = {
    "language": ("English", "LanguageTTS"),
    "resulttype": ("Wav", "ResultTypeTTS"),
}


def problem_body(errors: dict[str, list[str]], *, status: int = 400) -> bytes:
    """``{"type", "title", "status", "errors", "traceId"}`` as ASP.NET writes it."""
    title = "One or more validation errors occurred." if status == 400 else "Too Many Requests"
    return orjson.dumps(
        {
            "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "title": title,
            "status": status,
            "errors": errors,
            "traceId": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00",
        }
    )


def _conversion_error(path: str, target: str) -> str:
    return (
        f"The JSON value could not be converted to Aspose.OCR.Cloud.Models.{target}. "
        f"Path: {path} | LineNumber: 0 | BytePositionInLine: 0."
    )


def _key(obj: dict[str, Any], name: str) -> str | None:
    """The key of ``obj`` equal to ``name`` ignoring case (the first, like the framework)."""
    for key in obj:
        if key.lower() == name:
            return key
    return None


def parse_submit(raw: bytes, *, max_chars: int | None = None) -> tuple[str, dict[str, list[str]]]:
    """``(text, errors)`` for a submit body; the text is usable only if ``errors`` is empty.

    ``max_chars`` is the trial's length limit (None: no limit).
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return "", {"$": [f"The request body is not valid JSON: {exc}"]}
    if not isinstance(body, dict):
        return "", {"$": [_conversion_error("$", "TTSBody")]}
    errors: dict[str, list[str]] = {}
    text_key = _key(body, "text")
    text = body.get(text_key) if text_key is not None else None
    if text is not None and not isinstance(text, str):
        errors["$.text"] = [
            "The JSON value could not be converted to System.String. "
            "Path: $.text | LineNumber: 0 | BytePositionInLine: 0."
        ]
        text = ""
    elif text is None or not text.strip():
        errors["Text"] = ["The Text field is required."]
        text = ""
    elif max_chars is not None and len(text) > max_chars:
        errors["Text"] = [
            f"The text is too long for the trial: {len(text)} characters, "
            f"at most {max_chars} are allowed."
        ]
    settings_key = _key(body, "settings")
    settings = body.get(settings_key) if settings_key is not None else None
    if settings is not None:
        if not isinstance(settings, dict):
            errors["$.settings"] = [_conversion_error("$.settings", "TTSSettings")]
        else:
            for name, (allowed, target) in _ENUMS.items():
                key = _key(settings, name)
                if key is None or settings[key] is None:
                    continue
                value = settings[key]
                if not (isinstance(value, str) and value.lower() == allowed.lower()):
                    path = f"$.settings.{key}"
                    errors[path] = [_conversion_error(path, target)]
    return text, errors
