"""Mark the spectra reserved for testing, and create the shipped search tasks."""
from django.db import migrations

from kb.search_tasks import TASKS, held_out


def forwards(apps, schema_editor):
    Spectrum = apps.get_model("kb", "Spectrum")
    reserved = [pk for pk, specobjid in Spectrum.objects.values_list("pk", "specobjid") if held_out(specobjid)]
    for start in range(0, len(reserved), 500):
        Spectrum.objects.filter(pk__in=reserved[start : start + 500]).update(held_out=True)
    SearchTask = apps.get_model("kb", "SearchTask")
    for task in TASKS.values():
        SearchTask.objects.update_or_create(
            name=task.name,
            defaults={"title": task.title, "description": task.description, "labelling": task.labelling,
                      "target_labels": list(task.target_labels)},
        )


class Migration(migrations.Migration):
    dependencies = [("kb", "0002_knowledge_bases")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
