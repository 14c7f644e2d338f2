"""Admins' operations: rebuild and retrain as candidates, compare, promote or discard; cancel; resume."""

import signal
import time
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from inference import index as vector_index
from inference.models import Operation
from inference.services.knowledge_bases import knowledge_base_build
from inference.services.operations import operation_cancel, operation_discard, operation_promote, operation_start
from inference.services.search import search
from inference.worker.operations import operation_claim, operation_run
from kb.labellings import TASKS
from kb.models import AuditEvent, KnowledgeBase, Spectrum
from tests.conftest import form_as_rendered, person, shipped_task, start_worker
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(db):
    return person("grace", "admin")


def test_a_rebuild_builds_candidates_that_serve_nothing_until_promoted(searchable, admin_user):
    old = searchable["lens"]
    probe = Spectrum.objects.filter(held_out=True).first()
    operation = operation_start(user=admin_user, kind="rebuild", task=shipped_task("lens"))
    operation = operation_run(operation=operation)
    (candidate,) = operation.candidates.all()
    assert operation.status == "done" and candidate.status == "ready" and not candidate.in_service
    assert (
        candidate.version == old.version + 1 and candidate.evaluation["test_spectra"] == old.evaluation["test_spectra"]
    )
    assert search(task="lens", spectrum=probe).kb_version == old.version  # the old version still answers

    operation_promote(user=admin_user, operation=operation)
    assert search(task="lens", spectrum=probe).kb_version == candidate.version
    assert KnowledgeBase.objects.get(pk=old.pk).in_service is False
    actions = list(AuditEvent.objects.filter(actor=admin_user).order_by("id").values_list("action", flat=True))
    assert actions == ["operation_started", "knowledge_base_promoted", "operation_promoted"]


def test_a_rebuild_chooses_its_index_by_size_again_unless_one_was_chosen_by_hand(searchable, admin_user, monkeypatch):
    def rebuilt() -> KnowledgeBase:
        operation = operation_run(operation=operation_start(user=admin_user, kind="rebuild", task=shipped_task("lens")))
        operation_promote(user=admin_user, operation=operation)
        return operation.candidates.get()

    lens = searchable["lens"]
    assert lens.index_kind == "flat" == vector_index.kind_for(lens.size) and lens.target_fraction is None  # auto
    monkeypatch.setattr(vector_index, "FLAT_MAX", lens.size - 1)
    KnowledgeBase.objects.filter(pk=lens.pk).update(size=lens.size - 10)  # built before 10 more were labelled
    grown = rebuilt()
    assert grown.size == lens.size and grown.index_kind == "compressed" and grown.index_recall >= 0.99
    knowledge_base_build(task=shipped_task("lens"), index_kind="hnsw")
    assert rebuilt().index_kind == "hnsw"  # an admin's choice stands


def test_pretraining_makes_a_new_checkpoint_and_candidates_for_every_task(searchable, admin_user):
    before = TrainingRun.objects.get(in_service=True)
    operation = operation_run(operation=operation_start(user=admin_user, kind="pretrain", preset="small", max_steps=4))
    run = operation.training_run
    assert run != before and run.status == "succeeded" and not run.in_service
    assert [point["step"] for point in operation.history] == [1, 2, 3, 4]  # eval_every defaults to 100: loss only
    assert all(point["train_loss"] > 0 for point in operation.history)
    assert sorted(kb.task.name for kb in operation.candidates.all()) == ["bpt3", "lens"]
    assert {kb.training_run_id for kb in operation.candidates.all()} == {run.pk}

    operation_promote(user=admin_user, operation=operation)
    run.refresh_from_db()
    assert run.in_service and not TrainingRun.objects.get(pk=before.pk).in_service
    assert set(KnowledgeBase.objects.filter(in_service=True).values_list("training_run", flat=True)) == {run.pk}
    answer = search(task="bpt3", spectrum=Spectrum.objects.filter(held_out=True).first())
    assert answer.training_run == run.pk


def test_discarding_keeps_the_versions_in_service(searchable, admin_user):
    operation = operation_run(operation=operation_start(user=admin_user, kind="rebuild"))
    operation_discard(user=admin_user, operation=operation, reason="no better")
    assert set(operation.candidates.values_list("status", flat=True)) == {"discarded"}
    assert set(KnowledgeBase.objects.filter(in_service=True)) == {searchable["lens"], searchable["bpt3"]}
    with pytest.raises(ValueError, match="only a finished operation's candidates"):
        operation_promote(user=admin_user, operation=operation)


@pytest.mark.parametrize("role", ["astronomer", "curator"])
def test_only_admins_start_promote_or_discard(searchable, admin_user, role, client):
    operation = operation_run(operation=operation_start(user=admin_user, kind="rebuild", task=shipped_task("lens")))
    someone = person("vera", role)
    for act in (operation_promote, operation_discard, operation_cancel):
        with pytest.raises(PermissionDenied):
            act(user=someone, operation=operation)
    with pytest.raises(PermissionDenied):
        operation_start(user=someone, kind="rebuild")
    client.force_login(someone)
    assert client.post(f"/operations/{operation.pk}/promote/").status_code == 404  # not even theirs to see
    assert client.get("/operations/").status_code == 403
    operation.refresh_from_db()
    assert operation.status == "done" and not operation.candidates.filter(in_service=True).exists()


def test_one_operation_at_a_time_and_cancelling(searchable, admin_user):
    queued = operation_start(user=admin_user, kind="rebuild")
    with pytest.raises(ValueError, match="is under way"):
        operation_start(user=admin_user, kind="embed")
    assert operation_cancel(user=admin_user, operation=queued).status == "cancelled"
    assert operation_run(operation=queued).candidates.count() == 0  # a cancelled operation is not taken up

    running = operation_start(user=admin_user, kind="rebuild")
    Operation.objects.filter(pk=running.pk).update(cancel_requested=True)  # as if asked while it ran
    running = operation_run(operation=running)
    assert running.status == "cancelled" and not running.candidates.exists()


def test_a_running_operation_is_taken_up_again_only_once_its_worker_is_silent(searchable, admin_user, settings):
    operation = operation_start(user=admin_user, kind="rebuild")
    assert operation_claim(operation=operation)
    assert not operation_claim(operation=operation)  # its worker is alive
    Operation.objects.filter(pk=operation.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.GALSPEC_OPERATION_STALE_S + 1)
    )
    assert operation_claim(operation=operation)
    assert Operation.objects.get(pk=operation.pk).attempts == 2


def test_the_operations_page_shows_progress_and_the_comparison(searchable, admin_user, client):
    client.force_login(admin_user)
    asked = {"kind": "rebuild", "task": "lens", "preset": "small"}
    review = client.post("/operations/", asked)  # what it will do, and how long: nothing starts yet
    assert review.status_code == 200 and not Operation.objects.exists()
    page = review.content.decode()
    assert "Builds a new version of the lens task" in page and 'id="duration">about a minute' in page
    confirmed = form_as_rendered(page, "start")
    assert confirmed["kind"] == "rebuild" and confirmed["task"] == "lens" and confirmed["confirmed"] == "True"
    response = client.post("/operations/", confirmed)
    operation = Operation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/operations/{operation.pk}/"
    again = client.post("/operations/", confirmed)
    assert 'name="confirmed" value="True"' not in again.content.decode()  # the next try is reviewed first
    assert again.status_code == 400 and again.content.decode().count("is under way: wait for it") == 1
    operation_run(operation=operation)
    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.RUNNING)  # as while a worker scores it
    assert 'id="comparison"' not in client.get(f"/operations/{operation.pk}/").content.decode()
    Operation.objects.filter(pk=operation.pk).update(status=Operation.Status.DONE)
    page = client.get(f"/operations/{operation.pk}/").content.decode()
    candidate = operation.candidates.get()
    assert f"v{candidate.version}" in page and f"v{searchable['lens'].version}" in page and 'id="promote"' in page
    assert f"{candidate.evaluation['f1']:.3f}" in page
    progress = client.get(f"/operations/{operation.pk}/progress/").json()
    assert progress["complete"] is True and progress["success"] is True and progress["state"] == "DONE"
    assert client.post(f"/operations/{operation.pk}/promote/").status_code == 302
    assert KnowledgeBase.objects.get(pk=candidate.pk).in_service


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_during_training_while_searches_go_on(searchable, data_dir, settings):
    """Every search during the operation is answered from the version in service; the killed operation
    is taken up by a new worker, resumes from its last checkpoint, and its candidates serve only once promoted."""
    admin = person("grace", "admin")
    old = {name: kb.version for name, kb in searchable.items()}
    probes = list(Spectrum.objects.filter(held_out=True)[:5])
    environment = {"GALSPEC_OPERATION_STALE_S": "2"}
    first = start_worker(data_dir, settings, **environment)
    from django.db import transaction

    with transaction.atomic():  # the worker takes it up once committed, with checkpoints every 5 steps
        operation = operation_start(user=admin, kind="pretrain", preset="small", max_steps=40)
        TrainingRun.objects.filter(pk=operation.training_run_id).update(
            train_config={**operation.training_run.train_config, "eval_every": 5, "batch_size": 8}
        )

    answers = []
    deadline = time.monotonic() + 300
    while Operation.objects.get(pk=operation.pk).step < 12:
        assert first.poll() is None and time.monotonic() < deadline, first.log_path.read_text()[-3000:]
        answers += [search(task=name, spectrum=probe).kb_version == old[name] for name in old for probe in probes]
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = Operation.objects.get(pk=operation.pk).step
    answers += [search(task=name, spectrum=probe).kb_version == old[name] for name in old for probe in probes]

    second = start_worker(data_dir, settings, **environment)
    try:
        while Operation.objects.get(pk=operation.pk).status in ("queued", "running"):
            assert second.poll() is None and time.monotonic() < deadline, second.log_path.read_text()[-3000:]
            answers += [search(task=name, spectrum=probe).kb_version == old[name] for name in old for probe in probes]
    finally:
        second.terminate()
        second.wait(timeout=30)
    operation.refresh_from_db()
    assert operation.status == "done", operation.error
    assert operation.attempts == 2 and killed_at < 40
    assert [point["step"] for point in operation.history] == list(range(1, 41))
    resumed = next(point["step"] for point in operation.history if point["attempt"] == 2)
    # from the last checkpoint (every 5 steps) before the kill, not from step 1; the kill may fall between
    # a checkpoint's write and the progress report after it
    assert resumed > 1 and (resumed - 1) % 5 == 0 and killed_at - 4 <= resumed <= killed_at + 2
    assert all(answers) and len(answers) > 20
    operation_promote(user=admin, operation=operation)
    assert {search(task=name, spectrum=probes[0]).training_run for name in old} == {operation.training_run_id}


def test_the_plan_of_each_operation_says_what_runs_and_roughly_how_long(searchable):
    from inference.selectors.background import operation_plan

    rebuild = operation_plan(kind="rebuild")
    assert (
        f"all {len(TASKS)} tasks' knowledge bases" in rebuild["steps"][0] and rebuild["duration"] == "about 2 minutes"
    )
    embed = operation_plan(kind="embed")
    assert embed["steps"][0].startswith("Embeds the 0 spectra not yet embedded")  # all are, in this survey
    pretrain = operation_plan(kind="pretrain", preset="small", max_steps=100_000)
    run = searchable["lens"].training_run
    hours = 100_000 * run.metrics["seconds"] / run.metrics["steps"] / 3600
    assert "for 100,000 steps" in pretrain["steps"][0] and pretrain["duration"].endswith(" hours")
    assert float(pretrain["duration"].split()[1]) == pytest.approx(hours, abs=0.15)  # plus embedding and builds
    assert all(plan["steps"][-1].startswith("Nothing changes for searchers") for plan in (rebuild, embed, pretrain))
