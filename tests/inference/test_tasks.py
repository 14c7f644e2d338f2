"""Embedding and pre-training as Celery tasks, run by a real worker process."""

from pathlib import Path

import pytest

from inference import index as vector_index
from inference.models import EmbeddingSet
from inference.tasks import bulk_search_task, embedding_update_task, knowledge_base_index_task
from kb.labellings import TASKS
from kb.mock import generate_survey
from kb.models import SearchTask
from kb.services.ingest import ingest_folder
from kb.services.knowledge_bases import knowledge_base_create
from training.models import TrainingRun
from training.services import training_run_create, training_run_execute
from training.tasks import training_run_execute_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_tasks_are_routed_to_their_queues():
    from galspec_site.celery import app

    router = app.amqp.router
    assert router.route({}, training_run_execute_task.name)["queue"].name == "training"
    assert router.route({}, embedding_update_task.name)["queue"].name == "embedding"
    assert router.route({}, knowledge_base_index_task.name)["queue"].name == "embedding"
    assert router.route({}, bulk_search_task.name)["queue"].name == "embedding"


def test_a_worker_pretrains_then_embeds(data_dir, tmp_path, celery_worker_process):
    generate_survey(out=tmp_path / "survey", size=24, seed=4)
    ingest_folder(folder=tmp_path / "survey")
    run = training_run_create(preset="small", max_steps=2, eval_every=1, batch_size=4, warmup_steps=1)

    metrics = training_run_execute_task.delay(run.pk).get(timeout=300)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED and run.in_service
    assert metrics["val_masked_mse"] == run.metrics["val_masked_mse"]

    rows = embedding_update_task.delay(run.pk).get(timeout=300)
    assert rows == 24 == EmbeddingSet.objects.get(training_run=run).rows


def test_a_worker_builds_a_knowledge_base_index(data_dir, tmp_path, celery_worker_process):
    generate_survey(out=tmp_path / "survey", size=40, seed=5, lens_fraction=0.2)
    ingest_folder(folder=tmp_path / "survey")
    run = training_run_execute(
        run=training_run_create(preset="small", max_steps=2, eval_every=1, batch_size=4, warmup_steps=1)
    )
    lens = TASKS["lens"]  # created by a migration, which a transactional test's flush may have emptied
    task, _ = SearchTask.objects.get_or_create(
        name="lens",
        defaults={"title": lens.title, "labelling": lens.labelling, "target_labels": list(lens.target_labels)},
    )
    kb = knowledge_base_create(task=task, training_run=run)
    assert kb.status == "building"

    assert knowledge_base_index_task.delay(kb.pk).get(timeout=300) == kb.pk
    kb.refresh_from_db()
    assert kb.status == "ready" and kb.in_service
    index, sidecar = vector_index.load(Path(kb.index_path))
    assert index.ntotal == kb.size and sidecar["knowledge_base"] == kb.pk
