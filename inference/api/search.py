"""Searching one spectrum: ``POST /api/v1/search/``, the vote with its evidence."""

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from galspec_site.api import validated
from inference.background_lines import COMBINES, HOSTS
from inference.retriever import MAX_K, WEIGHTINGS
from inference.services.search import search_query
from inference.trust import MAX_PERCENTILE
from kb.api import KnowledgeBaseField, TaskField


class NeighbourSerializer(serializers.Serializer):
    spectrum_id = serializers.IntegerField()
    specobjid = serializers.CharField()
    plate_mjd_fiber = serializers.CharField()
    z = serializers.FloatField()
    label = serializers.CharField()
    distance = serializers.FloatField(
        help_text="L2 distance between the vectors of the knowledge base's representation (policy.representation), "
        "after its learned metric where it has one"
    )
    weight = serializers.FloatField(help_text="Share of the vote: softmax of the weight function of the distances")
    catalogs = serializers.ListField(child=serializers.CharField(), help_text="Catalogs the label came from")
    details = serializers.DictField()
    mock = serializers.BooleanField(help_text="From GalSpec's generated mock survey: the ids name no SDSS object")


class TrustSerializer(serializers.Serializer):
    valid_fraction = serializers.FloatField(help_text="Share of the query's 3688 grid pixels observed and not masked")
    z = serializers.FloatField(help_text="The query's redshift")
    z_in_range = serializers.BooleanField(
        allow_null=True, help_text="z lies within the knowledge base entries' range; null if not calibrated"
    )
    nearest_distance = serializers.FloatField(allow_null=True, help_text="L2 distance to the nearest entry")
    distance_percentile = serializers.FloatField(
        allow_null=True,
        help_text="Where that distance falls among validation spectra's nearest distances (0-100; above "
        f"{MAX_PERCENTILE:g}: unlike what the knowledge base was checked on)",
    )
    reconstruction_chi2 = serializers.FloatField(
        allow_null=True,
        help_text="Median chi-squared of the encoder's reconstruction of a fixed quarter of the query's pixels "
        "from the rest; below 1 for a spectrum like those it learnt from",
    )
    reconstruction_percentile = serializers.FloatField(
        allow_null=True,
        help_text=f"Where that chi-squared falls among validation spectra's (0-100; above {MAX_PERCENTILE:g}: "
        "its pixels do not hang together as a galaxy's do); null if not calibrated",
    )
    in_distribution = serializers.BooleanField(
        allow_null=True,
        help_text="All four signals within bounds: the vote can be read as the task's test figures say; "
        "false: do not act on it without looking; null: unknown (knowledge base not calibrated)",
    )
    reasons = serializers.ListField(child=serializers.CharField(), help_text="Why not in distribution, in words")


class PolicySerializer(serializers.Serializer):
    k = serializers.IntegerField(help_text="Neighbours that voted")
    weighting = serializers.CharField(help_text="exp, inverse, inverse_square or linear, of the distances")
    temperature = serializers.FloatField(help_text="The weights' scores are divided by it before the softmax")
    metric = serializers.CharField(help_text="identity (plain L2) or the learned map: whiten, lda or nca")
    representation = serializers.CharField(
        default="encoder",
        help_text="What the vectors are, chosen on validation: encoder (the embedding), window (the flux in the "
        "encoder's six line windows, each over its own median), encoder+window (both side by side) or restframe "
        "(the rest-frame spectrum 3650-6800 A over its running-median continuum), lines (the emission lines' BPT "
        "ratios, S/N and width, measured from the pixels) or encoder+lines",
    )
    window_scale = serializers.FloatField(
        default=1.0, help_text="encoder+window and encoder+lines: the part's weight beside the embedding's"
    )


class BackgroundSerializer(serializers.Serializer):
    z_source = serializers.FloatField(
        allow_null=True, help_text="Redshift of the best background-line candidate; null where none can be scanned"
    )
    snr = serializers.FloatField(help_text="Its lines' matched-filter S/N, positive parts added in quadrature")
    lines = serializers.DictField(child=serializers.FloatField(), help_text="Each line's S/N at z_source")
    detected = serializers.BooleanField(help_text="It passes the knowledge base's rule (S/N past threshold)")
    threshold = serializers.FloatField(
        allow_null=True, help_text="The combined S/N the rule asks, chosen on validation; null: the vote alone"
    )
    combine = serializers.ChoiceField(
        choices=COMBINES,
        help_text="How the rule joins the vote, chosen on validation with the threshold: 'either' (a target where "
        "the vote or the lines say so) or 'lines' (where the lines do; the vote is the evidence beside them)",
    )
    hosts = serializers.ChoiceField(
        choices=HOSTS,
        help_text="Which galaxies the rule looks behind, chosen on validation: 'any', or 'quiet' (those without "
        "emission lines of their own, as lens surveys chose early-type hosts)",
    )
    quiet_host = serializers.BooleanField(
        help_text="The query shows no emission lines of its own (one of H-beta, [O III], H-alpha, [N II] under S/N 3)"
    )


class WeirdnessSerializer(serializers.Serializer):
    score = serializers.FloatField(
        allow_null=True,
        help_text="L2 distance, in the knowledge base's metric, to the k-th nearest ordinary entry; null: none near",
    )
    k = serializers.IntegerField()
    threshold = serializers.FloatField(allow_null=True, help_text="Chosen on validation; null: the vote alone")
    false_positive_rate = serializers.FloatField(
        allow_null=True, help_text="Share of ordinary validation spectra the threshold flags"
    )
    flagged = serializers.BooleanField(help_text="Past the threshold: then the answer is a target")


class ContextSerializer(serializers.Serializer):
    voters = serializers.IntegerField(help_text="Neighbours whose label won the vote")
    own_lines = serializers.CharField(
        allow_null=True, help_text="The BPT class the query's own line fluxes give (S/N >= 3); null without line fits"
    )
    sdss_class = serializers.CharField(help_text="The SDSS pipeline's CLASS and SUBCLASS of the query")
    precision = serializers.FloatField(
        allow_null=True, help_text="How often votes for this label (target votes, in a search) were right"
    )
    recall = serializers.FloatField(allow_null=True, help_text="Share of this label's spectra (targets) voted so")
    scored_on = serializers.CharField(help_text="Where precision and recall were measured; empty if never")
    scored_with = serializers.CharField(
        help_text="The vote policy precision and recall were measured under; empty where none was measured under "
        "the policy of this answer (then precision and recall are null)"
    )
    unscored_because = serializers.CharField(help_text="Why no precision is quoted, in words; empty if one is")
    disagreements = serializers.ListField(
        child=serializers.CharField(), help_text="Where the query's own data contradict the vote"
    )


class AnswerSerializer(serializers.Serializer):
    query = serializers.CharField(help_text="What was searched")
    mock = serializers.BooleanField(help_text="The query is a spectrum of GalSpec's generated mock survey")
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
    checkpoint = serializers.CharField(help_text="The encoder checkpoint of that version: its training run and step")
    training_run = serializers.IntegerField()
    k = serializers.IntegerField()
    weight_function = serializers.CharField()
    policy = PolicySerializer(help_text="How this answer was voted")
    trust = TrustSerializer(help_text="How far to trust the vote")
    context = ContextSerializer()
    background = BackgroundSerializer(
        allow_null=True, help_text="Lens tasks: the scan for a second galaxy's emission lines behind the target"
    )
    weirdness = WeirdnessSerializer(
        allow_null=True, help_text="Outlier tasks: how far the query lies from every ordinary galaxy of the KB"
    )


class SearchApi(APIView):
    """Search one spectrum against a task's knowledge base: a spec-lite FITS file (multipart ``file``),
    or an ingested spectrum by ``identifier`` (specobjid or PLATE-MJD-FIBER) or ``ra``/``dec`` (degrees,
    nearest within ``radius_arcsec``). The answer is the vote with its evidence."""

    permission_classes = [permissions.AllowAny]

    class SearchInputSerializer(serializers.Serializer):
        task = TaskField()
        file = serializers.FileField(required=False, help_text="An SDSS spec-lite FITS file")
        identifier = serializers.CharField(required=False, default="", help_text="specobjid or PLATE-MJD-FIBER")
        ra = serializers.FloatField(required=False, allow_null=True, default=None, help_text="degrees, J2000")
        dec = serializers.FloatField(required=False, allow_null=True, default=None, help_text="degrees, J2000")
        radius_arcsec = serializers.FloatField(required=False, default=3.0)
        k = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            min_value=1,
            max_value=MAX_K,
            help_text="Neighbours that vote; default: the K the knowledge base was chosen and scored with. "
            "Precision and recall are quoted only for the policy they were measured under",
        )
        weight_function = serializers.ChoiceField(
            choices=WEIGHTINGS,
            required=False,
            allow_null=True,
            default=None,
            help_text="How distances become weights; default: the knowledge base's own weighting and temperature",
        )
        knowledge_base = KnowledgeBaseField(
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
            raise ValidationError(
                {"knowledge_base": f"knowledge base {kb.pk} is not a version of task {data['task'].name}"}
            )
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
