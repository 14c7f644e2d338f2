from django.apps import AppConfig
from django.db.models.signals import post_migrate


class KbConfig(AppConfig):
    name = "kb"
    verbose_name = "Spectra and knowledge bases"

    def ready(self):
        from kb.roles import roles_ensure
        from kb.services.shipped_tasks import shipped_tasks_sync

        # after auth has made the permissions (post_migrate runs per app, ours after auth's)
        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="kb.roles_ensure")
        post_migrate.connect(shipped_tasks_sync, sender=self, dispatch_uid="kb.shipped_tasks_sync")
