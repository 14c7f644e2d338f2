from django.contrib import admin

from kb.admin import KeptAdmin
from training.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(KeptAdmin):
    list_display = ["pk", "preset", "status", "step", "max_steps", "n_spectra", "in_service", "finished_at"]
    list_filter = ["status", "preset", "in_service"]
    readonly_fields = [field.name for field in TrainingRun._meta.fields]

    def has_add_permission(self, request):
        return False
