"""The roles, as Django auth groups: astronomer (search, flag), curator (review flags), admin (retrain,
rebuild, promote). A person has a role by being in its group; an administrator adds them in the admin
site. Each role holds the permissions of the ones before it."""

from django.contrib.auth.models import Group, Permission

ROLES = {
    "astronomer": ["kb.add_flag"],
    "curator": ["kb.add_flag", "kb.review_flag", "kb.view_auditevent"],
    "admin": ["kb.add_flag", "kb.review_flag", "kb.view_auditevent", "kb.operate_knowledgebase"],
}
FLAG, REVIEW, OPERATE = "kb.add_flag", "kb.review_flag", "kb.operate_knowledgebase"


def roles_ensure(**kwargs) -> None:
    """Create the role groups with their permissions (run after every migrate, and after a test flush)."""
    for role, permissions in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        for name in permissions:
            app_label, codename = name.split(".")
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is not None:
                group.permissions.add(permission)


def user_roles(user) -> list[str]:
    """The roles a user holds; a superuser holds them all."""
    if user.is_superuser:
        return list(ROLES)
    return [role for role in ROLES if user.groups.filter(name=role).exists()] if user.is_authenticated else []
