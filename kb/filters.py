"""Filters for the spectra and knowledge-base lists, shared by the pages and the API (django-filter)."""

import django_filters
from django import forms
from django.db.models import Exists, OuterRef

from kb.catalogs import catalog_choices
from kb.models import Flag, KBEntry, KnowledgeBase, Spectrum
from kb.selectors import search_tasks_visible, spectra_within


class SpectrumFilter(django_filters.FilterSet):
    z_min = django_filters.NumberFilter(field_name="z", lookup_expr="gte", label="Redshift at least")
    z_max = django_filters.NumberFilter(field_name="z", lookup_expr="lte", label="Redshift at most")
    label = django_filters.CharFilter(
        field_name="catalog_labels__label",
        distinct=True,
        label="A catalog gives this normalised label (e.g. liner, lens)",
    )
    catalog = django_filters.ChoiceFilter(
        field_name="catalog_labels__catalog", choices=catalog_choices, distinct=True, label="Labelled by this catalog"
    )
    identifier = django_filters.CharFilter(method="filter_identifier", label="specobjid or plate-MJD-fiber")
    ra = django_filters.NumberFilter(method="filter_cone", label="RA (°)", min_value=0, max_value=360)
    dec = django_filters.NumberFilter(method="filter_cone", label="Dec (°)", min_value=-90, max_value=90)
    radius_arcsec = django_filters.NumberFilter(
        method="filter_cone", label="within (″)", min_value=0.01, max_value=3600
    )

    class Meta:
        model = Spectrum
        fields = ["specobjid", "plate", "mjd", "fiberid", "sdss_class", "held_out", "validation"]

    def filter_identifier(self, queryset, name, value):
        value = value.strip()
        parts = value.removeprefix("spec-").split("-")
        if len(parts) == 3 and all(part.isascii() and part.isdigit() and len(part) <= 9 for part in parts):
            plate, mjd, fiber = (int(part) for part in parts)
            return queryset.filter(plate=plate, mjd=mjd, fiberid=fiber)
        return queryset.filter(specobjid=value)

    def filter_cone(self, queryset, name, value):
        """RA, Dec and a radius together (the radius 3″ if not given); one alone filters nothing."""
        data = self.form.cleaned_data
        if name != "ra" or data.get("ra") is None or data.get("dec") is None:
            return queryset
        radius = float(data.get("radius_arcsec") or 3.0)
        return spectra_within(ra=float(data["ra"]), dec=float(data["dec"]), radius_arcsec=radius, spectra=queryset)


ANY_YES_NO = forms.Select(choices=[("", "any"), ("true", "yes"), ("false", "no")])


def _visible_tasks(request):
    return search_tasks_visible(user=getattr(request, "user", None))


class KBEntryFilter(django_filters.FilterSet):
    """Entries by task (one the person may see), label (any case), open flags and redshift."""

    knowledge_base = django_filters.ModelChoiceFilter(
        queryset=lambda request: KnowledgeBase.objects.filter(task__in=_visible_tasks(request)).select_related("task"),
        label="Knowledge-base version",
    )
    task = django_filters.ModelChoiceFilter(
        field_name="knowledge_base__task",
        queryset=_visible_tasks,
        to_field_name="name",
        empty_label="every task",
        label="Search task",
    )
    flagged = django_filters.BooleanFilter(method="filter_flagged", widget=ANY_YES_NO, label="Has open flags")
    label = django_filters.ChoiceFilter(choices=[], empty_label="every label", label="Label in the knowledge base")
    z_min = django_filters.NumberFilter(field_name="spectrum__z", lookup_expr="gte", label="Redshift at least")
    z_max = django_filters.NumberFilter(field_name="spectrum__z", lookup_expr="lte", label="Redshift at most")

    class Meta:
        model = KBEntry
        fields = ["knowledge_base"]

    def __init__(self, data=None, queryset=None, **kwargs):
        # the labels of the entries one may see: another's private task's labels are nobody else's business
        shown = queryset if queryset is not None else KBEntry.objects.none()
        labels = sorted(set(shown.order_by().values_list("label", flat=True).distinct()))
        if data is not None and data.get("label"):  # LINER finds liner
            asked = data.get("label").strip()
            data = data.copy()
            data["label"] = next((label for label in labels if label.lower() == asked.lower()), asked)
        super().__init__(data, queryset, **kwargs)
        # on this form's own field: a filter's field is built once and may outlive the labels it was built with
        self.form.fields["label"].choices = [("", "every label"), *((label, label) for label in labels)]

    def filter_flagged(self, queryset, name, value):
        if value is None:
            return queryset
        open_flags = Flag.objects.filter(
            task=OuterRef("knowledge_base__task"), spectrum=OuterRef("spectrum"), status=Flag.Status.OPEN
        )
        return queryset.filter(Exists(open_flags)) if value else queryset.exclude(Exists(open_flags))


class KnowledgeBaseFilter(django_filters.FilterSet):
    task = django_filters.CharFilter(field_name="task__name", label="Search task (e.g. lens)")

    class Meta:
        model = KnowledgeBase
        fields = ["status", "in_service", "index_kind"]
