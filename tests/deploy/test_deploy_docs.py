"""docs/deploy.md: the settings reference is exactly the settings that exist (generated from
service/settings.py by ``python -m tests.deploy.settings_doc``)."""

from __future__ import annotations

import re

from service.settings import Settings
from tests.deploy import settings_doc


def test_settings_reference_is_generated_from_the_settings() -> None:
    block = settings_doc.documented_block(settings_doc.DOC.read_text())
    assert block == settings_doc.table(), "docs/deploy.md is stale: run `python -m tests.deploy.settings_doc`"


def test_settings_reference_lists_exactly_the_settings() -> None:
    block = settings_doc.documented_block(settings_doc.DOC.read_text())
    documented = re.findall(r"^\| `(TTS_[A-Z0-9_]+)` \|", block, flags=re.M)
    assert documented == [f"TTS_{name.upper()}" for name in Settings.model_fields]
    assert len(documented) == len(set(documented))


def test_every_tts_variable_in_the_doc_exists() -> None:
    names = set(re.findall(r"\bTTS_[A-Z0-9_]*[A-Z0-9]\b", settings_doc.DOC.read_text()))
    assert names <= {f"TTS_{n.upper()}" for n in Settings.model_fields}, sorted(names)
