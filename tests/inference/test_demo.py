"""`manage.py demo` runs the whole pipeline, knowledge bases included, and a second run keeps what is done."""

import json

import pytest
from django.core.management import call_command

from kb.models import KnowledgeBase
from training.checkpoint import SHIPPED
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def test_the_demo_pipeline_ends_with_a_knowledge_base_in_service_for_every_task(data_dir, shared_data, settings):
    settings.SHARED_DATA_DIR = shared_data
    call_command("demo", size=60, no_serve=True)
    run = TrainingRun.objects.get(in_service=True)  # the shipped checkpoint, not one trained here
    assert run.metrics == json.loads((SHIPPED / "metrics.json").read_text()) and run.metrics["n_train"] > 60
    in_service = KnowledgeBase.objects.filter(in_service=True, status="ready")
    assert sorted(in_service.values_list("task__name", flat=True)) == ["bpt3", "bpt5", "lens", "liner", "outlier"]
    call_command("demo", size=60, no_serve=True)  # again: nothing rebuilt
    assert TrainingRun.objects.count() == 1 and KnowledgeBase.objects.count() == 5
