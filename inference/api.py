"""REST API for searches, batch search jobs and survey searches.

``POST /api/v1/search/`` answers one spectrum at once, for anyone (throttled); batch jobs need a token
and belong to the user who made them. Survey searches are shared: anyone reads them, a token starts one.
"""

from django.http import Http404, HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, renderers, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from galspec_site.api import paginated, validated
from inference.models import SearchJob, SurveySearch
from inference.selectors import (
    search_job_get,
    search_job_list,
    search_job_rows,
    search_job_table,
    survey_candidates,
    survey_search_list,
)
from inference.services.jobs import search_job_cancel, search_job_create
from inference.services.search import MAX_K, search_query
from inference.services.surveys import survey_search_cancel, survey_search_start
from inference.tables import table_csv, table_votable
from inference.vote import WEIGHT_FUNCTIONS
from kb.models import KnowledgeBase, SearchTask


class NeighbourSerializer(serializers.Serializer):
    spectrum_id = serializers.IntegerField()
    specobjid = serializers.CharField()
    plate_mjd_fiber = serializers.CharField()
    z = serializers.FloatField()
    label = serializers.CharField()
    distance = serializers.FloatField(help_text="L2 distance between embeddings")
    weight = serializers.FloatField(help_text="Share of the vote: softmax of the weight function of the distances")
    catalogs = serializers.ListField(child=serializers.CharField(), help_text="Catalogs the label came from")
    details = serializers.DictField()


class AnswerSerializer(serializers.Serializer):
    query = serializers.CharField(help_text="What was searched")
    task = serializers.CharField()
    label = serializers.CharField(help_text="The label the neighbours voted for")
    share = serializers.FloatField(help_text="Its share of the vote weight")
    shares = serializers.DictField(child=serializers.FloatField())
    is_target = serializers.BooleanField(
        allow_null=True, help_text="The label is a target of the task; null for a classification task"
    )
    neighbours = NeighbourSerializer(many=True)
    knowledge_base = serializers.IntegerField(help_text="Id of the knowledge-base version that answered")
    kb_version = serializers.IntegerField()
    checkpoint = serializers.CharField(help_text="The encoder checkpoint of that version")
    training_run = serializers.IntegerField()
    k = serializers.IntegerField()
    weight_function = serializers.CharField()


class SearchApi(APIView):
    """Search one spectrum against a task's knowledge base: a spec-lite FITS file (multipart ``file``),
    or an ingested spectrum by ``identifier`` (specobjid or PLATE-MJD-FIBER) or ``ra``/``dec`` (degrees,
    nearest within ``radius_arcsec``). The answer is the vote with its evidence."""

    permission_classes = [permissions.AllowAny]

    class SearchInputSerializer(serializers.Serializer):
        task = serializers.SlugRelatedField(slug_field="name", queryset=SearchTask.objects.all())
        file = serializers.FileField(required=False, help_text="An SDSS spec-lite FITS file")
        identifier = serializers.CharField(required=False, default="", help_text="specobjid or PLATE-MJD-FIBER")
        ra = serializers.FloatField(required=False, allow_null=True, default=None, help_text="degrees, J2000")
        dec = serializers.FloatField(required=False, allow_null=True, default=None, help_text="degrees, J2000")
        radius_arcsec = serializers.FloatField(required=False, default=3.0)
        k = serializers.IntegerField(required=False, default=3, min_value=1, max_value=MAX_K)
        weight_function = serializers.ChoiceField(choices=sorted(WEIGHT_FUNCTIONS), required=False, default="exp")
        knowledge_base = serializers.PrimaryKeyRelatedField(
            queryset=KnowledgeBase.objects.filter(status=KnowledgeBase.Status.READY),
            required=False,
            allow_null=True,
            default=None,
            help_text="A knowledge-base version id, to repeat an old search; default: the one in service",
        )

    @extend_schema(request=SearchInputSerializer, responses=AnswerSerializer)
    def post(self, request):
        data = validated(self.SearchInputSerializer, request)
        kb = data["knowledge_base"]
        if kb is not None and kb.task != data["task"]:
            raise ValidationError({"knowledge_base": f"knowledge base {kb.pk} belongs to task {kb.task.name}"})
        upload = data.get("file")
        try:
            answer, _ = search_query(
                task=data["task"],
                identifier=data["identifier"],
                ra=data["ra"],
                dec=data["dec"],
                radius_arcsec=data["radius_arcsec"],
                upload=upload,
                upload_name=upload.name if upload else "",
                k=data["k"],
                weight_function=data["weight_function"],
                knowledge_base=kb,
            )
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return Response(AnswerSerializer(answer.as_dict()).data)


class _BackgroundSearchSerializer(serializers.ModelSerializer):
    """What a batch job and a survey search share: the task, the knowledge-base version, and links."""

    task = serializers.SlugRelatedField(slug_field="name", read_only=True)
    kb_version = serializers.IntegerField(source="knowledge_base.version", read_only=True)
    links = serializers.SerializerMethodField()

    def _absolute(self, name: str, key, query: str = "") -> str:
        """The address of the view ``name`` for ``key``, absolute when there is a request."""
        path = reverse(name, args=[key]) + query
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class JobSerializer(_BackgroundSearchSerializer):
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
        task = serializers.SlugRelatedField(slug_field="name", queryset=SearchTask.objects.all())
        k = serializers.IntegerField(required=False, default=3, min_value=1, max_value=MAX_K)
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
            required=False, help_text="CSV: a specobjid, plate_mjd_fiber or ra,dec header, or one identifier per line"
        )
        files = serializers.ListField(
            child=serializers.FileField(),
            required=False,
            default=list,
            help_text="SDSS spec-lite FITS files, about 20 MB in all per request "
            "(GALSPEC_MAX_UPLOAD_BYTES + 1 MB): split a larger set over several jobs",
        )

    @extend_schema(responses=JobSerializer(many=True))
    def get(self, request):
        return paginated(self, search_job_list(owner=request.user), JobSerializer, context={"request": request})

    @extend_schema(request=JobInputSerializer, responses={202: JobSerializer})
    def post(self, request):
        data = validated(self.JobInputSerializer, request)
        try:
            job = search_job_create(
                owner=request.user,
                task=data["task"],
                k=data["k"],
                identifiers=data["identifiers"],
                positions=data["positions"],
                query_list=data.get("csv"),
                files=[(f.name, f) for f in data["files"]],
            )
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


class SurveySerializer(_BackgroundSearchSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = SurveySearch
        fields = [
            "id",
            "task",
            "knowledge_base",
            "kb_version",
            "labels",
            "k",
            "status",
            "stage",
            "step",
            "total",
            "found",
            "label_counts",
            "error",
            "requested_by",
            "created_at",
            "finished_at",
            "links",
        ]

    def get_links(self, survey) -> dict:
        names = {
            "self": "api:survey-detail",
            "candidates": "api:survey-candidates",
            "candidates_csv": "inference:survey-candidates-csv",
            "all_csv": "inference:survey-all-csv",
            "page": "inference:survey",
        }
        return {link: self._absolute(name, survey.pk) for link, name in names.items()}


def _survey(pk: int) -> SurveySearch:
    try:
        return survey_search_list().get(pk=pk)
    except SurveySearch.DoesNotExist:
        raise Http404(f"no survey search {pk}") from None


class SurveyListApi(APIView):
    """Survey searches, newest first (GET), or a new one (POST, with a token): every ingested spectrum
    against the task's knowledge base in service, on a worker. Answers 202 with the search, or 200 with
    the same search already under way or done for that version, K and labels."""

    class SurveyInputSerializer(serializers.Serializer):
        task = serializers.SlugRelatedField(slug_field="name", queryset=SearchTask.objects.all())
        labels = serializers.ListField(
            child=serializers.CharField(),
            required=False,
            default=list,
            help_text="Labels of interest (default: the task's targets)",
        )
        k = serializers.IntegerField(required=False, default=3, min_value=1, max_value=MAX_K)

    @extend_schema(responses=SurveySerializer(many=True))
    def get(self, request):
        return paginated(self, survey_search_list(), SurveySerializer, context={"request": request})

    @extend_schema(request=SurveyInputSerializer, responses={202: SurveySerializer, 200: SurveySerializer})
    def post(self, request):
        data = validated(self.SurveyInputSerializer, request)
        try:
            survey, created = survey_search_start(
                user=request.user, task=data["task"], labels=data["labels"], k=data["k"]
            )
        except ValueError as error:
            raise ValidationError(str(error)) from None
        code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        return Response(SurveySerializer(survey, context={"request": request}).data, status=code)


class SurveyDetailApi(APIView):
    """A survey search: status, progress, label counts, and links to its candidates and tables."""

    @extend_schema(responses=SurveySerializer)
    def get(self, request, pk):
        return Response(SurveySerializer(_survey(pk), context={"request": request}).data)


class SurveyCancelApi(APIView):
    """Stop a survey search (who started it, or an administrator); the rows written so far are removed."""

    @extend_schema(request=None, responses=SurveySerializer)
    def post(self, request, pk):
        survey = survey_search_cancel(user=request.user, survey=_survey(pk))
        return Response(SurveySerializer(survey, context={"request": request}).data)


class SurveyCandidatesApi(APIView):
    """A finished survey search's candidates, surest first (highest share, then nearest); ``label`` keeps one."""

    class CandidateSerializer(serializers.Serializer):
        spectrum_id = serializers.IntegerField()
        specobjid = serializers.CharField(source="spectrum.specobjid")
        plate_mjd_fiber = serializers.CharField(source="spectrum.plate_mjd_fiber")
        z = serializers.FloatField(source="spectrum.z")
        ra = serializers.FloatField(source="spectrum.ra", allow_null=True)
        dec = serializers.FloatField(source="spectrum.dec", allow_null=True)
        label = serializers.CharField()
        share = serializers.FloatField()
        distance = serializers.FloatField(help_text="L2 distance to the nearest neighbour")
        neighbours = serializers.ListField(child=serializers.CharField(), help_text="specobjids, nearest first")
        distances = serializers.ListField(child=serializers.FloatField())

    @extend_schema(parameters=[OpenApiParameter("label", OpenApiTypes.STR)], responses=CandidateSerializer(many=True))
    def get(self, request, pk):
        candidates = survey_candidates(survey=_survey(pk), label=request.query_params.get("label", ""))
        return paginated(self, candidates, self.CandidateSerializer)
