"""Template filters the pages share."""

from django import template

register = template.Library()


@register.filter
def readable(value) -> str:
    """A value stored as JSON, as a person reads it: lists joined, dictionaries as 'key: value' pairs,
    true/false as yes/no, nothing as a dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return "; ".join(f"{key.replace('_', ' ')}: {readable(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(item) for item in value)
    return str(value)


@register.filter
def words(name: str) -> str:
    """A field's name as words: 'proposed_label' as 'proposed label'."""
    return str(name).replace("_", " ")
