"""Knowledge bases of a chosen composition over the API: build one (POST knowledge-bases/, 202), follow
the operation that builds it, then search with it by naming it (``knowledge_base``)."""

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from galspec_site.api import validated
from inference import index as vector_index
from inference.models import Operation
from inference.selectors.tasks import operation_get
from inference.services.operations import knowledge_base_candidate_start, operation_visible
from kb.api import KnowledgeBaseListApi, TaskField


class OperationSerializer(serializers.ModelSerializer):
    task = serializers.SlugRelatedField(slug_field="name", read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = Operation
        fields = [
            "id",
            "kind",
            "task",
            "params",
            "training_run",
            "status",
            "stage",
            "step",
            "total",
            "error",
            "candidates",
            "requested_by",
            "created_at",
            "finished_at",
            "links",
        ]

    def get_links(self, operation) -> dict:
        request = self.context.get("request")

        def absolute(name: str, key) -> str:
            path = reverse(name, args=[key])
            return request.build_absolute_uri(path) if request else path

        return {
            "self": absolute("api:operation-detail", operation.pk),
            "page": absolute("inference:operation", operation.pk),
            "candidates": [
                absolute("api:knowledge-base-detail", pk) for pk in operation.candidates.values_list("pk", flat=True)
            ],
        }


class KnowledgeBaseListCreateApi(KnowledgeBaseListApi):
    """Every version of every task's knowledge base (GET); or a new one of the composition asked for (POST,
    astronomers): built on a worker, answering 202 with the operation to follow. Once it is built, search
    with it by passing its id as ``knowledge_base``; an admin decides whether it goes into service."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly]

    class ComposeInputSerializer(serializers.Serializer):
        task = TaskField()
        target_fraction = serializers.FloatField(
            required=False, allow_null=True, default=None, help_text="share of targets, 0-1; null: natural proportions"
        )
        size = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=1, help_text="entries; null: as many as allowed"
        )
        seed = serializers.IntegerField(required=False, default=0, min_value=0)
        index = serializers.ChoiceField(
            choices=vector_index.CHOICES,
            required=False,
            default="auto",
            help_text=f"flat is exact; auto is flat up to {vector_index.FLAT_MAX:,} entries, compressed beyond",
        )

    @extend_schema(request=ComposeInputSerializer, responses={202: OperationSerializer})
    def post(self, request):
        data = validated(self.ComposeInputSerializer, request)
        try:
            operation = knowledge_base_candidate_start(
                user=request.user,
                task=data["task"],
                target_fraction=data["target_fraction"],
                size=data["size"],
                seed=data["seed"],
                index_kind=data["index"],
            )
        except ValueError as error:
            raise ValidationError(str(error)) from None
        data = OperationSerializer(operation, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["links"]["self"]})


class OperationDetailApi(APIView):
    """An operation's status and progress, and its candidate knowledge bases once built: for admins, and
    for whoever started it."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=OperationSerializer)
    def get(self, request, pk: int):
        operation = operation_get(pk=pk)
        if operation is None or not operation_visible(user=request.user, operation=operation):
            raise Http404(f"no operation {pk}")  # one answer: which operations exist is nobody else's business
        return Response(OperationSerializer(operation, context={"request": request}).data)
