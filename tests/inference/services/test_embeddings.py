"""Embedding in parts that every embedding worker may take: a part whose worker dies is embedded again, the
set's committed rows grow only over the parts done from its start, and the result equals one worker's."""

import signal
import time

import numpy as np
import pytest

from inference.embed import embed, reconstruction_chi2
from inference.models import EmbeddingPart, EmbeddingSet
from inference.selectors.embeddings import embedding_store, reconstruction_store
from inference.services import embeddings
from inference.services.embeddings import embedding_parts_help, embedding_update
from inference.tasks import embedding_update_task
from kb.selectors import spectrum_redshifts, spectrum_store
from tests.conftest import start_worker
from training.checkpoint import load_checkpoint, load_masked_model

pytestmark = pytest.mark.django_db(transaction=True)  # helpers and heartbeats write on their own connections


def _one_worker_at_a_time(run) -> tuple[np.ndarray, np.ndarray]:
    """What embedding every spectrum in one go gives: (embeddings, reconstruction chi-squared)."""
    store = spectrum_store()
    (flux, valid), ivar = store.read(), store.read_ivar()
    z = spectrum_redshifts(0, len(flux))
    return (
        embed(load_checkpoint(run.checkpoint_path), flux, valid, z),
        reconstruction_chi2(load_masked_model(run.checkpoint_path), flux, valid, ivar),
    )


def _assert_as_one_worker_embeds(run) -> None:
    embedding_set = EmbeddingSet.objects.get(training_run=run)
    vectors, chi2 = _one_worker_at_a_time(run)
    assert embedding_set.rows == len(vectors) == 80 and not embedding_set.parts.exists()
    np.testing.assert_allclose(embedding_store(embedding_set).read(), vectors, atol=1e-5)
    np.testing.assert_allclose(reconstruction_store(embedding_set).read()[:, 0], chi2, rtol=1e-5)


def test_a_helper_that_dies_loses_nothing_and_readers_see_only_parts_done_from_the_start(
    trained, settings, monkeypatch
):
    """The helper sent embeds part 1 and dies in part 2; the embedder takes parts 3 to 5, then part 2 once
    its heartbeat is stale. Meanwhile readers see rows 0-15 only: parts 3 to 5 are done past a gap."""
    settings.GALSPEC_EMBEDDING_CHUNK = 16  # 80 spectra: five parts
    settings.GALSPEC_OPERATION_STALE_S = 1
    assert not EmbeddingSet.objects.filter(training_run=trained).exists()
    real_part_embed, real_embed, taken = embeddings._part_embed, embeddings.embed, []

    def part_embed(embedding_set, model, part, batch_size):
        taken.append((part.first_row, part.attempts))
        return real_part_embed(embedding_set, model, part, batch_size)

    def dies_in_its_second_part(*args, **options):
        if len(taken) == 2:
            raise SystemExit("helper killed")
        return real_embed(*args, **options)

    sent = []

    def fan_out(helpers: int) -> None:
        sent.append(helpers)
        with monkeypatch.context() as patch:
            patch.setattr(embeddings, "embed", dies_in_its_second_part)
            with pytest.raises(SystemExit):
                embedding_parts_help(training_run=trained)

    seen = []

    def progress(done: int, total: int) -> None:
        embedding_set = EmbeddingSet.objects.get(training_run=trained)
        seen.append((done, embedding_set.rows, embedding_store(embedding_set).rows, total))

    monkeypatch.setattr(embeddings, "_part_embed", part_embed)
    embedding_update(training_run=trained, fan_out=fan_out, on_progress=progress)
    assert sent == [4]  # one helper for every part but the embedder's own
    # part 2 is taken again once stale: after parts 3 to 5, or sooner on a machine slow enough to stale it first
    assert taken[:2] == [(0, 1), (16, 1)] and sorted(taken[2:]) == [(16, 2), (32, 1), (48, 1), (64, 1)]
    before_retake = seen[: taken.index((16, 2)) - 1]
    assert before_retake and all(rows == stored == 16 and total == 80 for _, rows, stored, total in before_retake)
    _assert_as_one_worker_embeds(trained)


def test_spectra_ingested_since_are_embedded_in_new_parts_and_unrecorded_rows_never(trained, settings, tmp_path):
    from kb.mock import generate_survey
    from kb.services.ingest import ingest_folder

    settings.GALSPEC_EMBEDDING_CHUNK = 32
    store = spectrum_store()
    store.append(*(rows[:1] for rows in (*store.read(), store.read_ivar())))  # an ingest that died: no record
    assert embedding_update(training_run=trained).rows == 80  # the unrecorded row is left alone
    generate_survey(out=tmp_path / "more", size=12, seed=99)
    ingest_folder(folder=tmp_path / "more")
    sent = []
    embedding_update(training_run=trained, fan_out=sent.append)
    assert sent == []  # one part: no helper sent
    embedding_set = EmbeddingSet.objects.get(training_run=trained)
    assert embedding_set.rows == 92 and not embedding_set.parts.exists()
    vectors, _ = _one_worker_at_a_time(trained)
    np.testing.assert_allclose(embedding_store(embedding_set).read(), vectors, atol=1e-5)


def test_two_workers_share_an_embedding_and_killing_one_loses_nothing(trained, data_dir, settings):
    """Each embedding call takes 2 s more on these workers. The first embeds and sends helpers; the second,
    started once it runs, takes parts; killed in the middle of one, its part is taken again."""
    from galspec_site.celery import app

    app.control.purge() if settings.REDIS_URL else None
    environment = {
        "GALSPEC_EMBEDDING_CHUNK": "8",  # 80 spectra: ten parts
        "GALSPEC_OPERATION_STALE_S": "3",
        "GALSPEC_TEST_EMBED_DELAY": "2",
    }
    first = start_worker(data_dir, settings, module="tests.slow_worker", **environment)
    second, workers, deadline = None, set(), time.monotonic() + 240
    parts = EmbeddingPart.objects.filter(embedding_set__training_run=trained)
    try:
        result = embedding_update_task.delay(trained.pk)
        while not parts.filter(status="running").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.log_path.read_text()[-3000:]
            time.sleep(0.1)
        second = start_worker(data_dir, settings, module="tests.slow_worker", **environment)
        theirs, lost = set(), None
        while len(theirs) < 2:  # it has done one part and runs another
            assert second.poll() is None and time.monotonic() < deadline, second.log_path.read_text()[-3000:]
            for pk, worker in parts.filter(status="running").values_list("pk", "worker"):
                workers.add(worker.split("pid ")[1])
                if worker.endswith(f"pid {second.pid}"):
                    theirs.add(pk)
                    lost = pk
            time.sleep(0.05)
        second.send_signal(signal.SIGKILL)  # in the middle of a part: 2 s long, and seen running just now
        second.wait()
        assert result.get(timeout=max(1, deadline - time.monotonic())) == 80
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
    assert workers == {str(first.pid), str(second.pid)}  # both took parts
    assert not parts.filter(pk=lost).exists()  # taken again, done and committed
    _assert_as_one_worker_embeds(trained)


def test_the_embed_command_sends_the_helpers_asked_for_and_refuses_a_negative_count(trained, settings, monkeypatch):
    from django.core.management import CommandError, call_command

    from inference.management.commands import embed as command

    settings.GALSPEC_EMBEDDING_CHUNK = 16  # 80 spectra: five parts
    sent = []
    monkeypatch.setattr(command, "embedding_helpers_send", lambda run_id, helpers: sent.append((run_id, helpers)))
    with pytest.raises(CommandError, match="give 0 or more helpers"):
        call_command("embed", helpers=-1, verbosity=0)
    assert not EmbeddingSet.objects.exists()
    call_command("embed", helpers=2, verbosity=0)
    assert sent == [(trained.pk, 2)]  # four parts wanted helpers; two asked for
    _assert_as_one_worker_embeds(trained)
