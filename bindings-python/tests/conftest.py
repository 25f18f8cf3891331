"""Shared fixtures: the project's test vectors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import django

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")
django.setup()

VECTORS_DIR = Path(__file__).resolve().parents[2] / "tests" / "vectors"


def load_vectors() -> list[dict[str, Any]]:
    data = json.loads((VECTORS_DIR / "twilio-signatures.json").read_text(encoding="utf-8"))
    vectors: list[dict[str, Any]] = data["vectors"]
    assert len(vectors) >= 200  # other faces add vectors (issue 26: wss:// URLs)
    return vectors


def raw_body(vector: dict[str, Any]) -> str:
    """The body as sent on the wire: the form encoding, or the JSON text."""
    if vector["body"] is not None:
        return str(vector["body"])
    return str(vector["form_body"] or "")
