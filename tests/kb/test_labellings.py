"""The registries: one Labelling per label source, one CatalogSource per catalog, shipped tasks synced."""

import pytest
from django.core.management import call_command

from kb import catalogs
from kb.catalogs import CATALOG_SOURCES, catalog_choices, find_catalogs, read_eplusa
from kb.labellings import LABELLINGS, OTHER, TASKS, label_spectrum, own_lines_label
from kb.models import CatalogLabel, SearchTask, Spectrum
from kb.services.ingest import ingest_folder
from kb.services.shipped_tasks import shipped_tasks_sync

BPT = {"galspecextra": ("-1", "normal"), "emissionlinesport": ("BLANK", "normal")}
GOTO_HEADER = "plate,mjd,fiberid,ra,dec,z,ew_hdelta,ew_halpha,ew_oii\n"


def test_the_eplusa_labelling_reads_gotos_catalog_among_galaxies_with_consistent_bpt_labels():
    labelled = label_spectrum("eplusa", {**BPT, "goto2007": ("6.10", "e+a")})
    assert (labelled.label, labelled.catalogs, labelled.details) == ("e+a", ("goto2007",), {"hdelta_ew": "6.10"})
    assert label_spectrum("eplusa", BPT).label == OTHER
    assert label_spectrum("eplusa", {"galspecextra": ("1", "star-forming")}) is None  # no consistent label
    assert LABELLINGS["eplusa"].labels == ("e+a", OTHER) and "goto2007" in LABELLINGS["eplusa"].catalogs


def test_every_labelling_reads_catalogs_that_exist_and_every_task_a_labelling():
    assert all(set(labelling.catalogs) <= set(CATALOG_SOURCES) for labelling in LABELLINGS.values())
    assert all(task.labelling in LABELLINGS for task in TASKS.values())
    assert [key for key, _ in catalog_choices()] == list(CATALOG_SOURCES)


def test_the_own_lines_check_is_the_labellings_own():
    strong = {
        name: {"flux": flux, "flux_err": 1.0}
        for name, flux in (("H_alpha", 300.0), ("H_beta", 100.0), ("[O_III] 5007", 40.0), ("[N_II] 6583", 60.0))
    }
    assert own_lines_label("bpt5", strong) == "star-forming" and own_lines_label("bpt3", strong) == "star-forming"
    assert own_lines_label("lens", strong) is None and own_lines_label("catalog", strong) is None


def test_gotos_catalog_is_found_by_name_and_read(tmp_path):
    path = tmp_path / "goto2007_eplusa.csv"
    path.write_text(GOTO_HEADER + "301,52000,17,150.1,2.2,0.08,6.50,-1.20,0.30\n")
    assert find_catalogs(tmp_path) == {"goto2007": [path]}
    (row,) = read_eplusa(path)
    assert (row.label, row.value, row.plate_mjd_fiber, row.details["ew_hdelta"]) == (
        "e+a",
        "6.50",
        (301, 52000, 17),
        6.5,
    )
    path.write_text("name,z\nx,0.1\n")
    with pytest.raises(catalogs.CatalogError, match="needs plate, mjd and fiberid columns, or a specobjid"):
        read_eplusa(path)


@pytest.mark.django_db
def test_ingest_attaches_gotos_rows_to_the_spectra_they_name(survey, data_dir, tmp_path):
    ingest_folder(folder=survey)
    spectrum = Spectrum.objects.order_by("pk").first()
    folder = tmp_path / "eplusa"
    folder.mkdir()
    (folder / "goto2007_eplusa.csv").write_text(
        GOTO_HEADER + f"{spectrum.plate},{spectrum.mjd},{spectrum.fiberid},0,0,0.1,7.00,-0.5,0.1\n"
    )
    ingest_folder(folder=folder)
    label = CatalogLabel.objects.get(catalog="goto2007", spectrum=spectrum)
    assert (label.label, label.value, label.get_catalog_display()) == ("e+a", "7.00", "E+A galaxies (Goto 2007)")


@pytest.mark.django_db
def test_shipped_tasks_are_synced_after_migrate_without_a_migration_of_their_own():
    assert set(SearchTask.objects.filter(owner=None).values_list("name", flat=True)) >= set(TASKS)
    SearchTask.objects.filter(name="eplusa").update(title="an old title")
    SearchTask.objects.filter(name="lens").delete()
    assert shipped_tasks_sync() == ["lens"]
    assert SearchTask.objects.get(name="eplusa").title == TASKS["eplusa"].title
    call_command("makemigrations", "kb", "--check", "--dry-run", verbosity=0)  # the registries need none
