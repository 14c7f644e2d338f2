"""check_store finds each way the database and the files can disagree, and says how to mend it."""

import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inference.selectors.store_check import store_check
from kb.models import KBEntry, Spectrum
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def _errors() -> list[str]:
    return [finding.what for finding in store_check() if finding.level == "error"]


def test_a_consistent_store_passes(searchable, capsys):
    call_command("check_store")
    assert "the database and the files agree" in capsys.readouterr().out


def test_a_missing_index_is_an_error_naming_the_knowledge_base(searchable):
    lens = searchable["lens"]
    (Path(lens.index_path) / "index.faiss").unlink()
    assert _errors() == [f"{lens}: its index is missing at {lens.index_path}"]
    with pytest.raises(CommandError, match="1 errors"):
        call_command("check_store")


def test_an_index_and_its_entries_disagreeing(searchable):
    lens = searchable["lens"]
    KBEntry.objects.filter(knowledge_base=lens).first().delete()
    (error,) = _errors()
    assert error == f"{lens}: its index holds {lens.size} ids and the database {lens.size - 1} entries; 1 differ"


def test_a_spectrum_past_the_end_of_the_array_store(searchable):
    spectrum = Spectrum.objects.order_by("-store_row").first()
    Spectrum.objects.filter(pk=spectrum.pk).update(store_row=10_000)
    (error,) = _errors()
    assert "1 spectra point past the end of the array store" in error and "row 10000" in error


def test_a_missing_checkpoint_in_service(searchable):
    run = TrainingRun.objects.get(in_service=True)
    shutil.rmtree(Path(run.checkpoint_dir) / "best")
    assert _errors() == [f"{run}: checkpoint {run.checkpoint_dir}/best is missing"]


def test_leftovers_are_warnings_only(searchable, capsys):
    leftover = Path(searchable["lens"].index_path).with_name("v9.tmp")
    leftover.mkdir()
    call_command("check_store")
    out = capsys.readouterr().out
    assert f"warning: {leftover}: left by an index write that stopped midway" in out and "(1 warnings)" in out
