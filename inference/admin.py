from django.contrib import admin

from inference.models import EmbeddingSet, Operation, SearchJob, SurveySearch
from kb.admin import KeptAdmin


class ReadOnlyAdmin(KeptAdmin):
    """Rows the pipeline writes: listed and inspected here, changed only through the site's services."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(EmbeddingSet)
class EmbeddingSetAdmin(KeptAdmin):
    list_display = ["training_run", "width", "rows", "updated_at"]
    readonly_fields = ["training_run", "width", "rows", "path", "updated_at"]


@admin.register(SearchJob)
class SearchJobAdmin(KeptAdmin):
    list_display = ["public_id", "owner", "task", "status", "done", "total", "failed", "created_at"]
    list_filter = ["status", "task"]
    search_fields = ["public_id", "owner__username"]
    readonly_fields = [field.name for field in SearchJob._meta.fields if field.name != "id"]

    def has_add_permission(self, request):
        return False


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = ["pk", "kind", "task", "status", "stage", "attempts", "requested_by", "created_at"]
    list_filter = ["kind", "status"]


@admin.register(SurveySearch)
class SurveySearchAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "task",
        "knowledge_base",
        "labels",
        "k",
        "status",
        "found",
        "total",
        "requested_by",
        "created_at",
    ]
    list_filter = ["status", "task"]
