import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (or GALSPEC_SHARED_DATA): real SDSS files, read in place."""
    path = Path(os.environ.get("GALSPEC_SHARED_DATA", REPO.parent / "shared" / "data"))
    assert (path / "sdss-spectra").is_dir(), f"real SDSS test data not found at {path} (set GALSPEC_SHARED_DATA)"
    return path


@pytest.fixture(scope="session")
def real_spectra(shared_data) -> list[Path]:
    files = sorted((shared_data / "sdss-spectra").glob("spec-*.fits"))
    assert len(files) == 10
    return files


@pytest.fixture
def data_dir(settings, tmp_path):
    """A fresh GALSPEC_DATA_DIR for one test: its own array store, checkpoints and embeddings."""
    settings.DATA_DIR = tmp_path / "var"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR
