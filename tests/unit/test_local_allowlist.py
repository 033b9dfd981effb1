"""The worker loads only allowed base models: never a path a job names, even a real model folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftq.shared.providers.base import ProviderRejected
from ftq.shared.providers.local import models
from ftq.shared.settings import reset_settings


@pytest.fixture
def model_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("FTQ_LOCAL_MODELS", f"allowed={folder}")
    reset_settings()
    yield folder
    monkeypatch.delenv("FTQ_LOCAL_MODELS")
    reset_settings()


def test_an_allowed_name_resolves_to_its_folder(model_folder: Path) -> None:
    assert models.locate("allowed") == model_folder


@pytest.mark.parametrize("name", ["{folder}", "{folder}/", "~/model", "./model", "nope"])
def test_paths_and_unknown_names_are_refused(model_folder: Path, name: str) -> None:
    with pytest.raises(ProviderRejected) as refused:
        models.locate(name.format(folder=model_folder))
    assert refused.value.code == "model_not_available"
    assert "allowed" in str(refused.value)
