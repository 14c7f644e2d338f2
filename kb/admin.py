"""Admin lists of spectra, labels, tasks and knowledge bases. Knowledge bases are built and promoted by
services (``manage.py build_kb``), never edited here: a built version never changes."""

from django.contrib import admin

from kb.models import CatalogLabel, IngestRun, KBEntry, KnowledgeBase, SearchTask, Spectrum
from kb.services.curation import search_task_configure


class KeptAdmin(admin.ModelAdmin):
    """A record GalSpec keeps: listed and inspected here, never deleted. Spectra, tasks, knowledge bases and
    their entries, training runs and jobs are what answers were given from, and what the audit trail names;
    a built version never changes. Removing one is a service's work (e.g. a knowledge base abandoned), audited."""

    def has_delete_permission(self, request, obj=None):
        return False


class CatalogLabelInline(admin.TabularInline):
    model = CatalogLabel
    extra = 0
    can_delete = False
    readonly_fields = ["catalog", "value", "label", "details", "source_file"]


@admin.register(Spectrum)
class SpectrumAdmin(KeptAdmin):
    list_display = ["plate_mjd_fiber", "specobjid", "z", "sdss_class", "sn_median", "held_out", "validation"]
    list_filter = ["held_out", "validation", "sdss_class", "catalog_labels__label"]
    search_fields = ["specobjid", "=plate"]
    readonly_fields = [field.name for field in Spectrum._meta.fields]
    inlines = [CatalogLabelInline]


@admin.register(SearchTask)
class SearchTaskAdmin(KeptAdmin):
    """Only the consensus rule is edited here (through its service, which audits the change)."""

    list_display = ["name", "title", "labelling", "target_labels", "consensus_flags", "curator_decides"]
    readonly_fields = ["name", "title", "description", "labelling", "target_labels"]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        search_task_configure(
            task=obj, consensus_flags=obj.consensus_flags, curator_decides=obj.curator_decides, actor=request.user
        )


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(KeptAdmin):
    list_display = [
        "task",
        "version",
        "status",
        "in_service",
        "size",
        "index_kind",
        "index_recall",
        "training_run",
        "finished_at",
    ]
    list_filter = ["task", "status", "in_service", "index_kind"]
    readonly_fields = [field.name for field in KnowledgeBase._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(KBEntry)
class KBEntryAdmin(KeptAdmin):
    list_display = ["spectrum", "label", "knowledge_base"]
    list_filter = ["knowledge_base__task", "label"]
    search_fields = ["spectrum__specobjid"]
    list_select_related = ["spectrum", "knowledge_base__task"]
    readonly_fields = ["knowledge_base", "spectrum", "label", "catalogs", "details"]

    def has_add_permission(self, request):
        return False


@admin.register(IngestRun)
class IngestRunAdmin(KeptAdmin):
    list_display = ["source", "started_at", "finished_at"]
    readonly_fields = ["source", "started_at", "finished_at", "summary"]
