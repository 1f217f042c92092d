"""Two processes sharing a home (two replicas on one host) download the same version at once: both end up
serving the one copy on disk, and the one that lost the race does not fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import packaging


def fake_bundle(folder: Path, marker: str) -> None:
    folder.mkdir(parents=True)
    (folder / "preprocessor.json").write_text(marker)


def test_the_process_that_loses_the_race_to_cache_a_version_uses_the_winners_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    target = home / "models" / "nightshift-tiny" / "v1"

    def download(artifact_uri: str, dst_path: str) -> str:
        fake_bundle(Path(dst_path) / "artifacts" / "bundle", "mine")
        fake_bundle(target / "bundle", "winner")  # the other replica renames its copy in meanwhile
        return dst_path

    monkeypatch.setattr(packaging.mlflow.artifacts, "download_artifacts", download)
    bundle = packaging.local_bundle(home, "nightshift-tiny", "1")
    assert (bundle / "preprocessor.json").read_text() == "winner"
    assert [p.name for p in target.parent.iterdir()] == ["v1"]  # no staging folder left behind


def test_a_download_without_a_bundle_is_still_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def download(artifact_uri: str, dst_path: str) -> str:
        Path(dst_path).mkdir(parents=True)
        return dst_path

    monkeypatch.setattr(packaging.mlflow.artifacts, "download_artifacts", download)
    with pytest.raises(ValueError, match="no Nightshift scorer bundle"):
        packaging.local_bundle(tmp_path / "home", "nightshift-tiny", "1")
