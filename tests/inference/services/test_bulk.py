"""Bulk search of the whole survey: chunked, the same answers as one search at a time, resumable."""

import csv

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inference.services.bulk import bulk_search
from inference.services.knowledge_bases import knowledge_base_build
from inference.services.search import search
from kb.models import Spectrum
from tests.conftest import shipped_task

pytestmark = pytest.mark.django_db


def _rows(out):
    return [row for part in sorted(out.glob("part-*.csv")) for row in csv.DictReader(open(part))]


def test_every_spectrum_is_answered_as_a_single_search_would(searchable, tmp_path):
    call_command("bulk_search", task="lens", out=str(tmp_path / "lens"), chunk=30, verbosity=0)
    rows = _rows(tmp_path / "lens")
    assert len(list((tmp_path / "lens").glob("part-*.csv"))) == 3 and len(rows) == Spectrum.objects.count() == 80
    by_id = {row["specobjid"]: row for row in rows}
    in_kb = set(searchable["lens"].entries.values_list("spectrum_id", flat=True))
    for spectrum in Spectrum.objects.all():
        answer = search(task="lens", spectrum=spectrum)
        row = by_id[spectrum.specobjid]
        assert row["label"] == answer.label and row["is_target"] == str(answer.is_target)
        assert row["neighbours"].split() == [n.specobjid for n in answer.neighbours]
        assert row["in_distribution"] == str(answer.trust.in_distribution)  # and how far to trust it
        assert float(row["distance_percentile"]) == pytest.approx(answer.trust.distance_percentile, abs=0.06)
        assert float(row["valid_fraction"]) == pytest.approx(spectrum.valid_fraction, abs=1e-4)
        assert (spectrum.pk in in_kb) <= (spectrum.specobjid not in row["neighbours"].split())


def test_an_interrupted_bulk_search_carries_on_where_it_stopped(searchable, tmp_path):
    out = tmp_path / "lens"

    def stop_after_the_first_part(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bulk_search(task=shipped_task("lens"), out=out, chunk=30, on_progress=stop_after_the_first_part)
    first = out / "part-00001.csv"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "part-00001.csv"]
    written = first.stat().st_mtime_ns
    manifest = bulk_search(task=shipped_task("lens"), out=out, chunk=30)
    assert manifest["parts"] == 3 and len(_rows(out)) == 80 and first.stat().st_mtime_ns == written


def test_a_folder_of_another_knowledge_base_version_is_refused(searchable, tmp_path):
    bulk_search(task=shipped_task("lens"), out=tmp_path / "lens", chunk=30)
    knowledge_base_build(task=shipped_task("lens"), seed=3)
    with pytest.raises(CommandError, match="holds a bulk search of lens KB v1"):
        call_command("bulk_search", task="lens", out=str(tmp_path / "lens"), chunk=30, verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_a_bulk_search(searchable, tmp_path, celery_worker_process):
    from inference.tasks import bulk_search_task

    assert bulk_search_task.delay(shipped_task("lens").pk, str(tmp_path / "lens"), 30).get(timeout=240)["parts"] == 3
    assert len(_rows(tmp_path / "lens")) == Spectrum.objects.count()
