import pytest

from kb.mock import generate_survey
from kb.services import ingest_folder
from training.services import training_run_create, training_run_execute

QUICK = dict(max_steps=3, eval_every=3, batch_size=8, warmup_steps=1)


@pytest.fixture(scope="session")
def survey(tmp_path_factory):
    """80 mock spectra, rich in lenses and outliers so that every task has targets in the KB and the test reserve."""
    out = tmp_path_factory.mktemp("kb-survey")
    generate_survey(out=out, size=80, seed=11, lens_fraction=0.15, outlier_fraction=0.15)
    return out


@pytest.fixture
def trained(data_dir, survey):
    """The survey ingested and a checkpoint (a few steps of the small preset) in service."""
    ingest_folder(folder=survey)
    return training_run_execute(run=training_run_create(preset="small", **QUICK))
