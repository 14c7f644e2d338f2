"""Filters for the spectra and knowledge-base lists, shared by the pages and the API (django-filter)."""

import django_filters
from django.db.models import Exists, OuterRef

from kb.models import Catalog, Flag, KBEntry, KnowledgeBase, Spectrum


class SpectrumFilter(django_filters.FilterSet):
    z_min = django_filters.NumberFilter(field_name="z", lookup_expr="gte", label="Redshift at least")
    z_max = django_filters.NumberFilter(field_name="z", lookup_expr="lte", label="Redshift at most")
    label = django_filters.CharFilter(
        field_name="catalog_labels__label",
        distinct=True,
        label="A catalog gives this normalised label (e.g. liner, lens)",
    )
    catalog = django_filters.ChoiceFilter(
        field_name="catalog_labels__catalog", choices=Catalog.choices, distinct=True, label="Labelled by this catalog"
    )

    class Meta:
        model = Spectrum
        fields = ["specobjid", "plate", "mjd", "fiberid", "sdss_class", "held_out", "validation"]


class KBEntryFilter(django_filters.FilterSet):
    task = django_filters.CharFilter(field_name="knowledge_base__task__name", label="Search task (e.g. lens)")
    flagged = django_filters.BooleanFilter(method="filter_flagged", label="Has open flags")
    label = django_filters.CharFilter(label="Label in the knowledge base")
    z_min = django_filters.NumberFilter(field_name="spectrum__z", lookup_expr="gte", label="Redshift at least")
    z_max = django_filters.NumberFilter(field_name="spectrum__z", lookup_expr="lte", label="Redshift at most")

    class Meta:
        model = KBEntry
        fields = ["knowledge_base"]

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
