"""Mark the spectra reserved for testing. (The shipped search tasks were created here until 2026-12; they are
kept in step with ``kb.labellings.TASKS`` after every migrate now: ``kb.services.shipped_tasks``.)"""
from django.db import migrations

from kb.reserves import held_out


def forwards(apps, schema_editor):
    Spectrum = apps.get_model("kb", "Spectrum")
    reserved = [pk for pk, specobjid in Spectrum.objects.values_list("pk", "specobjid") if held_out(specobjid)]
    for start in range(0, len(reserved), 500):
        Spectrum.objects.filter(pk__in=reserved[start : start + 500]).update(held_out=True)


class Migration(migrations.Migration):
    dependencies = [("kb", "0002_knowledge_bases")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
