"""REST API for spectra, search tasks and knowledge bases: reads, open to everyone (throttled)."""

from pathlib import Path

from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from galspec_site.api import paginated, validated
from kb.bpt import bpt_ratios
from kb.catalogs import catalog_choices
from kb.examples import size_check
from kb.filters import KBEntryFilter, KnowledgeBaseFilter, SpectrumFilter
from kb.models import AuditEvent, CatalogLabel, Correction, Flag, KBEntry, KnowledgeBase, SearchTask, Spectrum
from kb.selectors import (
    agreement_report,
    audit_list,
    flag_list,
    knowledge_base_entries,
    search_tasks_visible,
    spectrum_flux,
)
from kb.services.catalog_tasks import catalog_task_create
from kb.services.curation import flag_raise, flag_review, flag_withdraw


@extend_schema_field(OpenApiTypes.STR)
class TaskField(serializers.SlugRelatedField):
    """A task by name, among those the request's user may see (``search_tasks_visible``): another's
    private task is no task at all to them."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="name", **kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return search_tasks_visible(user=request.user if request else None)


@extend_schema_field(OpenApiTypes.INT)
class KnowledgeBaseField(serializers.PrimaryKeyRelatedField):
    """A built knowledge-base version by id, among the tasks the request's user may see."""

    def get_queryset(self):
        request = self.context.get("request")
        tasks = search_tasks_visible(user=request.user if request else None)
        return KnowledgeBase.objects.filter(task__in=tasks, status=KnowledgeBase.Status.READY).select_related("task")


class CatalogLabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = CatalogLabel
        fields = ["catalog", "value", "label", "details"]


class SpectrumSerializer(serializers.ModelSerializer):
    plate_mjd_fiber = serializers.CharField(read_only=True)
    labels = CatalogLabelSerializer(source="catalog_labels", many=True, read_only=True)

    class Meta:
        model = Spectrum
        fields = [
            "id",
            "specobjid",
            "plate",
            "mjd",
            "fiberid",
            "plate_mjd_fiber",
            "ra",
            "dec",
            "z",
            "z_err",
            "zwarning",
            "sdss_class",
            "subclass",
            "sn_median",
            "vdisp",
            "held_out",
            "validation",
            "mock",
            "labels",
        ]


def _spectra():
    return Spectrum.objects.prefetch_related(Prefetch("catalog_labels", CatalogLabel.objects.order_by("catalog")))


class SpectrumListApi(generics.ListAPIView):
    """Ingested spectra, filtered by redshift, catalog label, plate, MJD, fiber or specobjid."""

    serializer_class = SpectrumSerializer
    filterset_class = SpectrumFilter

    def get_queryset(self):
        return _spectra()


class SpectrumDetailApi(APIView):
    class SpectrumDetailSerializer(SpectrumSerializer):
        lines = serializers.JSONField(help_text="SPZLINE fits: flux and flux_err in 1e-17 erg/s/cm^2, ew in Angstrom")
        bpt = serializers.SerializerMethodField(help_text="log10 line ratios n2, o3, s2, o1 where the fluxes allow")
        file = serializers.SerializerMethodField(help_text="The name of the file it was ingested from")

        class Meta(SpectrumSerializer.Meta):
            fields = SpectrumSerializer.Meta.fields + ["norm", "valid_fraction", "lines", "bpt", "file"]

        def get_bpt(self, spectrum) -> dict:
            return bpt_ratios(spectrum.lines)

        def get_file(self, spectrum) -> str:
            return Path(spectrum.source_file).name  # never the server's path to it

    @extend_schema(responses=SpectrumDetailSerializer)
    def get(self, request, pk: int):
        return Response(self.SpectrumDetailSerializer(get_object_or_404(_spectra(), pk=pk)).data)


class SpectrumFluxApi(APIView):
    class FluxSerializer(serializers.Serializer):
        specobjid = serializers.CharField()
        wave = serializers.ListField(child=serializers.FloatField(), help_text="Observed wavelength, Angstrom, vacuum")
        flux = serializers.ListField(
            child=serializers.FloatField(allow_null=True),
            help_text="Flux divided by norm (dimensionless); null where not valid",
        )
        norm = serializers.FloatField(
            help_text="Median flux over rest-frame 5300-5850 Angstrom, 1e-17 erg/s/cm^2/Angstrom"
        )
        z = serializers.FloatField()

    @extend_schema(responses=FluxSerializer)
    def get(self, request, pk: int):
        """The preprocessed spectrum on the linear 3850-9000 Angstrom grid of 3688 points."""
        spectrum = get_object_or_404(Spectrum, pk=pk)
        wave, flux, valid = spectrum_flux(spectrum=spectrum)
        data = {
            "specobjid": spectrum.specobjid,
            "wave": [round(float(w), 3) for w in wave],
            "flux": [float(f) if v else None for f, v in zip(flux, valid)],
            "norm": spectrum.norm,
            "z": spectrum.z,
        }
        return Response(self.FluxSerializer(data).data)


class KnowledgeBaseSerializer(serializers.ModelSerializer):
    task = serializers.SlugRelatedField(slug_field="name", read_only=True)
    checkpoint = serializers.SerializerMethodField()

    class Meta:
        model = KnowledgeBase
        fields = [
            "id",
            "task",
            "version",
            "status",
            "in_service",
            "size",
            "composition",
            "target_fraction",
            "seed",
            "training_run",
            "checkpoint",
            "index_kind",
            "index_params",
            "index_metric",
            "index_recall",
            "evaluation",
            "created_at",
            "finished_at",
        ]

    def get_checkpoint(self, kb) -> str:
        return kb.training_run.checkpoint_name


class TaskSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    knowledge_base_in_service = serializers.SerializerMethodField()

    class Meta:
        model = SearchTask
        fields = [
            "name",
            "title",
            "description",
            "labelling",
            "target_labels",
            "published",
            "owner",
            "catalog",
            "knowledge_base_in_service",
        ]

    def get_knowledge_base_in_service(self, task) -> int | None:
        in_service = [kb.pk for kb in task.knowledge_bases.all() if kb.in_service]
        return in_service[0] if in_service else None


class VisibleTasks:
    """The tasks the request's user may see: astronomers' own are theirs (and curators') until published."""

    serializer_class = TaskSerializer

    def get_queryset(self):
        return search_tasks_visible(user=self.request.user).prefetch_related("knowledge_bases")


class TaskListApi(VisibleTasks, generics.ListAPIView):
    """Search tasks: which labels each looks for; retasking is choosing another one (GET). POST (multipart,
    astronomers): a new task from your own catalog, private to you until a curator publishes it; 201 with
    the task and its match report (``catalog``)."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly]

    class CatalogTaskInputSerializer(serializers.Serializer):
        catalog = serializers.FileField(
            required=False,
            help_text="CSV or VOTable: specobjid, plate_mjd_fiber, plate+mjd+fiberid or ra+dec; optionally label",
        )
        ingested_catalog = serializers.ChoiceField(
            choices=catalog_choices(), required=False, help_text="instead of a file: its spectra with target_label"
        )
        name = serializers.CharField(max_length=32, help_text="a slug: a-z, 0-9, - and _")
        target_label = serializers.CharField(max_length=64)
        title = serializers.CharField(max_length=100, required=False, default="")
        radius_arcsec = serializers.FloatField(required=False, default=2.0, help_text="for rows given by RA and Dec")

    @extend_schema(request=CatalogTaskInputSerializer, responses={201: TaskSerializer})
    def post(self, request):
        data = validated(self.CatalogTaskInputSerializer, request)
        upload, ingested = data.pop("catalog", None), data.pop("ingested_catalog", None)
        if upload:
            try:
                size_check(upload.size, upload.name)  # before it is read into memory
            except ValueError as error:
                raise ValidationError(str(error)) from None
        source = {
            "data": upload.read() if upload else None,
            "filename": upload.name if upload else "",
            "ingested": (ingested, data["target_label"]) if ingested else None,
        }
        try:
            task = catalog_task_create(user=request.user, **source, **data)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskDetailApi(VisibleTasks, generics.RetrieveAPIView):
    lookup_field = "name"


class KnowledgeBaseListApi(generics.ListAPIView):
    """Every version of every task's knowledge base; built versions never change."""

    serializer_class = KnowledgeBaseSerializer
    filterset_class = KnowledgeBaseFilter

    def get_queryset(self):
        return _visible_knowledge_bases(self.request)


class KnowledgeBaseDetailApi(generics.RetrieveAPIView):
    serializer_class = KnowledgeBaseSerializer

    def get_queryset(self):
        return _visible_knowledge_bases(self.request)


def _visible_knowledge_bases(request):
    """Versions of the tasks the request's user may see."""
    tasks = search_tasks_visible(user=request.user)
    return KnowledgeBase.objects.filter(task__in=tasks).select_related("task", "training_run")


class KBEntryListApi(generics.ListAPIView):
    """The entries of one knowledge base: spectrum, label, and the catalogs the label came from."""

    class KBEntrySerializer(serializers.ModelSerializer):
        specobjid = serializers.CharField(source="spectrum.specobjid")
        plate_mjd_fiber = serializers.CharField(source="spectrum.plate_mjd_fiber")
        z = serializers.FloatField(source="spectrum.z")

        class Meta:
            model = KBEntry
            fields = ["spectrum", "specobjid", "plate_mjd_fiber", "z", "label", "catalogs", "details"]

    serializer_class = KBEntrySerializer
    filterset_class = KBEntryFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no pk
            return KBEntry.objects.none()
        kb = get_object_or_404(_visible_knowledge_bases(self.request), pk=self.kwargs["pk"])
        return knowledge_base_entries(knowledge_base=kb)


class FlagSerializer(serializers.ModelSerializer):
    task = serializers.SlugRelatedField(slug_field="name", read_only=True)
    raised_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    closed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    specobjid = serializers.CharField(source="spectrum.specobjid", read_only=True)

    class Meta:
        model = Flag
        fields = [
            "id",
            "task",
            "spectrum",
            "specobjid",
            "entry",
            "label",
            "proposed_label",
            "reason",
            "raised_by",
            "status",
            "created_at",
            "closed_at",
            "closed_by",
            "note",
        ]


class FlagListApi(APIView):
    """Your flags (a curator sees everyone's), filtered by ``task`` and ``status``; or a new flag: the
    spectrum is mislabelled in the task, here is the label it should have (or ``exclude``) and why."""

    permission_classes = [permissions.IsAuthenticated]

    class FlagInputSerializer(serializers.Serializer):
        task = TaskField()
        spectrum = serializers.PrimaryKeyRelatedField(queryset=Spectrum.objects.all())
        proposed_label = serializers.CharField(help_text="A label of the task, or 'exclude'")
        reason = serializers.CharField()

    @extend_schema(responses=FlagSerializer(many=True))
    def get(self, request):
        flags = flag_list(
            user=request.user, task=request.query_params.get("task", ""), status=request.query_params.get("status", "")
        )
        return paginated(self, flags, FlagSerializer)

    @extend_schema(request=FlagInputSerializer, responses={201: FlagSerializer})
    def post(self, request):
        data = validated(self.FlagInputSerializer, request)
        try:
            flag = flag_raise(user=request.user, **data)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return Response(FlagSerializer(flag).data, status=status.HTTP_201_CREATED)


class FlagWithdrawApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=FlagSerializer)
    def post(self, request, pk: int):
        try:
            # another's flag is as missing as one that never was: its id says nothing
            flag = flag_withdraw(user=request.user, flag=get_object_or_404(Flag, pk=pk, raised_by=request.user))
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return Response(FlagSerializer(flag).data)


class CurationDecisionApi(APIView):
    """A curator's decision on an entry's open flags: accept (correcting it to ``label``, by default the
    label most flags propose) or reject them; the note goes into the audit trail."""

    permission_classes = [permissions.IsAuthenticated]

    class DecisionInputSerializer(serializers.Serializer):
        task = TaskField()
        spectrum = serializers.PrimaryKeyRelatedField(queryset=Spectrum.objects.all())
        accept = serializers.BooleanField()
        label = serializers.CharField(required=False, allow_null=True, default=None)
        note = serializers.CharField()

    class CorrectionSerializer(serializers.ModelSerializer):
        task = serializers.SlugRelatedField(slug_field="name", read_only=True)
        decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

        class Meta:
            model = Correction
            fields = [
                "id",
                "task",
                "spectrum",
                "label",
                "corrected_label",
                "rule",
                "decided_by",
                "reason",
                "created_at",
            ]

    @extend_schema(request=DecisionInputSerializer, responses=CorrectionSerializer)
    def post(self, request):
        data = validated(self.DecisionInputSerializer, request)
        try:
            correction = flag_review(user=request.user, **data)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return Response(self.CorrectionSerializer(correction).data if correction else {"rejected": True})


class AuditListApi(generics.ListAPIView):
    """The audit trail, newest first (curators and admins), filtered by ``task``, ``spectrum`` and ``action``."""

    class AuditEventSerializer(serializers.ModelSerializer):
        actor = serializers.SlugRelatedField(slug_field="username", read_only=True)
        task = serializers.SlugRelatedField(slug_field="name", read_only=True)

        class Meta:
            model = AuditEvent
            fields = ["id", "at", "actor", "action", "subject", "task", "spectrum", "before", "after", "reason"]

    class MayViewAudit(permissions.BasePermission):
        message = "the audit trail is for curators and administrators"

        def has_permission(self, request, view):
            return request.user.has_perm("kb.view_auditevent")

    serializer_class = AuditEventSerializer
    filterset_fields = ["action", "spectrum"]
    permission_classes = [permissions.IsAuthenticated, MayViewAudit]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator reads no database
            return AuditEvent.objects.none()
        name = self.request.query_params.get("task", "")
        task = search_tasks_visible(user=self.request.user).filter(name=name).first()
        if name and task is None:
            return AuditEvent.objects.none()
        return audit_list(task=task, user=self.request.user)


class AgreementApi(APIView):
    """Vote fractions per flagged entry and Krippendorff's alpha across flaggers and curators."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        name = request.query_params.get("task", "")
        task = search_tasks_visible(user=request.user).filter(name=name).first()
        if name and task is None:
            raise Http404(f"no task {name!r}")  # private and missing tasks answer alike
        return Response(agreement_report(task=task, user=request.user))
