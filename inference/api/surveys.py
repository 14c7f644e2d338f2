"""Survey searches: start one, follow it, cancel it, page through its candidates."""

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from galspec_site.api import paginated, validated
from inference.api.jobs import BackgroundSearchSerializer
from inference.models import SurveySearch
from inference.retriever import MAX_K
from inference.selectors.background import KNOWN, NEW, survey_candidates, survey_search_list
from inference.services.surveys import survey_search_cancel, survey_search_start
from kb.api import TaskField


class SurveySerializer(BackgroundSearchSerializer):
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


def _survey(request, pk: int) -> SurveySearch:
    try:
        return survey_search_list(user=request.user).get(pk=pk)
    except SurveySearch.DoesNotExist:
        raise Http404(f"no survey search {pk}") from None


class SurveyListApi(APIView):
    """Survey searches, newest first (GET), or a new one (POST, with a token): every ingested spectrum
    against the task's knowledge base in service, on a worker. Answers 202 with the search, or 200 with
    the same search already under way or done for that version, K and labels."""

    class SurveyInputSerializer(serializers.Serializer):
        task = TaskField()
        labels = serializers.ListField(
            child=serializers.CharField(),
            required=False,
            default=list,
            help_text="Labels of interest (default: the task's targets)",
        )
        k = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            min_value=1,
            max_value=MAX_K,
            help_text="Neighbours that vote; default: the K the knowledge base was chosen and scored with",
        )

    @extend_schema(responses=SurveySerializer(many=True))
    def get(self, request):
        return paginated(self, survey_search_list(user=request.user), SurveySerializer, context={"request": request})

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
        return Response(SurveySerializer(_survey(request, pk), context={"request": request}).data)


class SurveyCancelApi(APIView):
    """Stop a survey search (who started it, or an administrator); the rows written so far are removed."""

    @extend_schema(request=None, responses=SurveySerializer)
    def post(self, request, pk):
        survey = survey_search_cancel(user=request.user, survey=_survey(request, pk))
        return Response(SurveySerializer(survey, context={"request": request}).data)


class SurveyCandidatesApi(APIView):
    """A finished survey search's candidates, surest first (highest share, then nearest); ``label`` keeps one,
    ``known`` ("known" or "new") those already catalogued with the label voted, or the new finds."""

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
        in_catalog = serializers.BooleanField(help_text="Whether the catalog its task was made from names it")
        known = serializers.BooleanField(
            allow_null=True, help_text="Already catalogued with the label voted; null for searches before it was kept"
        )
        mock = serializers.BooleanField(source="spectrum.mock", help_text="From GalSpec's generated mock survey")

    @extend_schema(
        parameters=[
            OpenApiParameter("label", OpenApiTypes.STR),
            OpenApiParameter("known", OpenApiTypes.STR, enum=[KNOWN, NEW]),
        ],
        responses=CandidateSerializer(many=True),
    )
    def get(self, request, pk):
        survey, params = _survey(request, pk), request.query_params
        try:
            candidates = survey_candidates(survey=survey, label=params.get("label", ""), known=params.get("known", ""))
        except ValueError as error:
            raise ValidationError({"known": str(error)}) from None
        return paginated(self, candidates, self.CandidateSerializer)
