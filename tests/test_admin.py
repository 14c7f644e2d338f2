"""The admin lists every model an administrator looks after, and refuses to hand-edit a knowledge base."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import User

from kb.models import KnowledgeBase

pytestmark = pytest.mark.django_db


def test_every_admin_list_and_detail_page_opens(client, searchable):
    client.force_login(User.objects.create_superuser("ada", password="x-password-7"))
    for model in admin.site._registry:
        meta = model._meta
        listing = client.get(f"/admin/{meta.app_label}/{meta.model_name}/")
        assert listing.status_code == 200, meta.label
        first = model.objects.first()
        if first is not None:
            assert client.get(f"/admin/{meta.app_label}/{meta.model_name}/{first.pk}/change/").status_code == 200, (
                meta.label
            )


def test_a_knowledge_base_cannot_be_added_by_hand(client, searchable):
    client.force_login(User.objects.create_superuser("ada", password="x-password-7"))
    assert client.get("/admin/kb/knowledgebase/add/").status_code == 403
    kb = searchable["lens"]
    client.post(f"/admin/kb/knowledgebase/{kb.pk}/change/", {"size": 1})
    kb.refresh_from_db()
    assert kb.size == searchable["lens"].size and KnowledgeBase.objects.count() == 2


def test_nothing_galspec_keeps_can_be_deleted_from_the_admin(client, searchable):
    """Not one by one, nor with the bulk action: spectra, tasks, knowledge bases, entries, runs and jobs stay."""
    client.force_login(User.objects.create_superuser("ada", password="x-password-7"))
    for model in admin.site._registry:
        meta = model._meta
        if meta.app_label not in ("kb", "inference", "training"):
            continue
        first = model.objects.first()
        if first is None:
            continue
        base = f"/admin/{meta.app_label}/{meta.model_name}/"
        assert client.post(f"{base}{first.pk}/delete/", {"post": "yes"}).status_code == 403, meta.label
        client.post(base, {"action": "delete_selected", "_selected_action": [first.pk], "post": "yes"})
        assert model.objects.filter(pk=first.pk).exists(), meta.label
