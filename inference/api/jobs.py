"""Batch search jobs: start one, follow it, cancel it, read its answers as JSON, CSV or VOTable."""

from django.http import Http404, HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, renderers, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from galspec_site.api import paginated, validated
from inference.models import SearchJob
from inference.retriever import MAX_K
from inference.selectors.background import search_job_get, search_job_list, search_job_rows, search_job_table
from inference.services.jobs import search_job_cancel, search_job_create
from inference.tables import table_csv, table_votable
from kb.api import TaskField


class BackgroundSearchSerializer(serializers.ModelSerializer):
    """What a batch job and a survey search share: the task, the knowledge-base version, and links."""

    task = serializers.SlugRelatedField(slug_field="name", read_only=True)
    kb_version = serializers.IntegerField(source="knowledge_base.version", read_only=True)
    links = serializers.SerializerMethodField()

    def _absolute(self, name: str, key, query: str = "") -> str:
        """The address of the view ``name`` for ``key``, absolute when there is a request."""
        path = reverse(name, args=[key]) + query
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class JobSerializer(BackgroundSearchSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = SearchJob
        fields = [
            "id",
            "task",
            "knowledge_base",
            "kb_version",
            "k",
            "status",
            "total",
            "done",
            "failed",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]

    def get_links(self, job) -> dict:
        key = job.public_id
        return {
            "self": self._absolute("api:job-detail", key),
            "results": self._absolute("api:job-results", key),
            "csv": self._absolute("api:job-results", key, "?format=csv"),
            "votable": self._absolute("api:job-results", key, "?format=votable"),
            "page": self._absolute("inference:job", key),
        }


class JobListApi(APIView):
    """Your batch search jobs (GET), or a new one (POST): identifiers and positions as JSON, or a CSV list
    (``csv``) and spectrum files (``files``, repeated) as multipart. Answers 202 with the job."""

    permission_classes = [permissions.IsAuthenticated]

    class JobInputSerializer(serializers.Serializer):
        task = TaskField()
        k = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            min_value=1,
            max_value=MAX_K,
            help_text="Neighbours that vote; default: the K the knowledge base was chosen and scored with",
        )
        identifiers = serializers.ListField(
            child=serializers.CharField(), required=False, default=list, help_text="specobjids or PLATE-MJD-FIBERs"
        )
        positions = serializers.ListField(
            child=serializers.DictField(child=serializers.FloatField()),
            required=False,
            default=list,
            help_text='[{"ra": deg, "dec": deg}, ...]',
        )
        csv = serializers.FileField(
            source="query_list",
            required=False,
            help_text="CSV: a specobjid, plate_mjd_fiber or ra,dec header, or one identifier per line",
        )
        files = serializers.ListField(
            child=serializers.FileField(),
            required=False,
            default=list,
            help_text="SDSS spec-lite FITS files, about 20 MB in all per request "
            "(GALSPEC_MAX_UPLOAD_BYTES + 1 MB): split a larger set over several jobs",
        )

        def validate_positions(self, positions: list[dict]) -> list[dict]:
            if any(set(position) != {"ra", "dec"} for position in positions):
                raise serializers.ValidationError('each position is {"ra": degrees, "dec": degrees}')
            return positions

    @extend_schema(responses=JobSerializer(many=True))
    def get(self, request):
        return paginated(self, search_job_list(owner=request.user), JobSerializer, context={"request": request})

    @extend_schema(request=JobInputSerializer, responses={202: JobSerializer})
    def post(self, request):
        data = validated(self.JobInputSerializer, request)
        try:
            job = search_job_create(owner=request.user, **data)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return Response(JobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


def _job(request, public_id) -> SearchJob:
    try:
        return search_job_get(public_id=public_id, owner=request.user)
    except SearchJob.DoesNotExist:
        raise Http404(f"no search job {public_id} of yours") from None


class JobDetailApi(APIView):
    """A job's status and progress: done of total, failed, and links to its results."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=JobSerializer)
    def get(self, request, public_id):
        return Response(JobSerializer(_job(request, public_id), context={"request": request}).data)


class JobCancelApi(APIView):
    """Stop a job after the input it is on; what is answered stays."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request, public_id):
        job = search_job_cancel(job=_job(request, public_id))
        return Response(JobSerializer(job, context={"request": request}).data)


class CSVRenderer(renderers.BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class VOTableRenderer(renderers.BaseRenderer):
    media_type = "application/x-votable+xml"
    format = "votable"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class JobResultsApi(APIView):
    """A job's answers in input order: JSON (paginated), or the whole table with ``?format=csv`` or
    ``?format=votable`` (the neighbours as columns, the task, KB version and checkpoint in the header)."""

    permission_classes = [permissions.IsAuthenticated]
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CSVRenderer, VOTableRenderer]

    class JobResultSerializer(serializers.Serializer):
        position = serializers.IntegerField()
        query = serializers.CharField()
        specobjid = serializers.CharField(allow_null=True)
        plate_mjd_fiber = serializers.CharField(allow_null=True)
        label = serializers.CharField(allow_null=True)
        share = serializers.FloatField(allow_null=True)
        is_target = serializers.BooleanField(allow_null=True)
        neighbours = serializers.ListField(child=serializers.DictField())
        error = serializers.CharField(allow_null=True)

    def handle_exception(self, exc):
        """Errors answer in JSON, the one error format, whatever format was asked for."""
        self.request.accepted_renderer, self.request.accepted_media_type = renderers.JSONRenderer(), "application/json"
        return super().handle_exception(exc)

    @extend_schema(
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv", "votable"])],
        responses=JobResultSerializer(many=True),
    )
    def get(self, request, public_id):
        job = _job(request, public_id)
        fmt = request.accepted_renderer.format
        if fmt in ("csv", "votable"):
            table = search_job_table(job=job)
            body = table_csv(table) if fmt == "csv" else table_votable(table)
            extension = "csv" if fmt == "csv" else "vot"
            response = HttpResponse(body, content_type=request.accepted_renderer.media_type)
            response["Content-Disposition"] = (
                f'attachment; filename="galspec-{job.task.name}-{job.public_id}.{extension}"'
            )
            return response
        rows = search_job_rows(job=job)
        return paginated(self, rows, self.JobResultSerializer)
