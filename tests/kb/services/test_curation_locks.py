"""Flags and decisions on one entry take turns (the spectrum's row lock): a flag raised while a curator's
decision is being written waits for it, and reads the label the decision made. Row locks are PostgreSQL's
(SQLite locks the whole file, and only at the first write), so this runs where CI's PostgreSQL pass runs it."""

import threading
import time

import pytest
from django.db import connection, transaction

from kb.models import Correction, Flag, Spectrum
from kb.services.curation import flag_raise
from tests.conftest import person

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_flag_raised_during_a_decision_reads_the_label_it_made(searchable):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (DATABASE_URL)")
    entry = searchable["lens"].entries.filter(label="other").select_related("spectrum", "knowledge_base__task").first()
    task, spectrum, vera, carla = entry.knowledge_base.task, entry.spectrum, person("vera"), person("carla", "curator")
    locked, done = threading.Event(), threading.Event()

    def decide() -> None:  # a curator's decision: under the entry's lock, correcting it to lens
        try:
            with transaction.atomic():
                Spectrum.objects.select_for_update().get(pk=spectrum.pk)
                Correction.objects.create(
                    task=task,
                    spectrum=spectrum,
                    label="other",
                    corrected_label="lens",
                    rule="curator",
                    decided_by=carla,
                )
                locked.set()
                time.sleep(1.0)  # the flag arrives now
        finally:
            connection.close()
            done.set()

    threading.Thread(target=decide).start()
    assert locked.wait(30)
    with pytest.raises(ValueError, match="already labelled lens"):
        flag_raise(user=vera, task=task, spectrum=spectrum, proposed_label="lens", reason="the arc")
    assert done.wait(30)
    assert not Flag.objects.filter(raised_by=vera).exists()  # no flag on a label that no longer is
