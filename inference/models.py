"""Embeddings of the ingested spectra, one matrix per checkpoint."""

from django.db import models

from training.models import TrainingRun


class EmbeddingSet(models.Model):
    """The embeddings of every ingested spectrum under one checkpoint.

    Row i of the matrix (an array store under ``path``) is the embedding of the spectrum with
    ``store_row == i``; ``rows`` leading rows are done.
    """

    training_run = models.OneToOneField(TrainingRun, on_delete=models.PROTECT, related_name="embedding_set")
    width = models.PositiveIntegerField(help_text="Floats per embedding (E)")
    rows = models.PositiveIntegerField(default=0, help_text="Spectra embedded so far")
    path = models.CharField(max_length=500)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.rows} embeddings of width {self.width} from {self.training_run}"


class RunStatus(models.TextChoices):
    """Where a background search (a batch job, a survey search) stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED)


class BackgroundWork(models.Model):
    """What every piece of work done in the background records: when it was asked for, how it ended."""

    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]


class LeasedWork(BackgroundWork):
    """Long work that one worker at a time holds (``inference.services.leases``): it is ``queued`` until
    claimed, then ``running`` with a heartbeat, taken up again once the heartbeat is stale."""

    stage = models.CharField(max_length=100, blank=True, help_text="What it is doing now")
    step = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from its worker")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker has taken it up")

    class Meta(BackgroundWork.Meta):
        abstract = True


class SearchJob(LeasedWork):
    """A batch of searches run in the background: identifiers or uploaded files, one task, one KB version.

    The inputs are ``inputs`` (``{"identifier": ...}`` or ``{"file": path under the job folder, "name":
    the name it was uploaded under}``); each answer is a ``SearchJobResult`` at the input's position, so
    a job whose worker died is taken up (``inference.services.leases``) where it stopped, each input
    answered once. The folder's files are deleted once the job has ended.
    """

    Status = RunStatus

    public_id = models.UUIDField(unique=True, editable=False, help_text="The job's id in URLs and the API")
    owner = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="search_jobs")
    task = models.ForeignKey("kb.SearchTask", on_delete=models.PROTECT, related_name="search_jobs")
    knowledge_base = models.ForeignKey(
        "kb.KnowledgeBase",
        on_delete=models.PROTECT,
        related_name="search_jobs",
        help_text="The version every search of the job is answered from (the one in service when it was made)",
    )
    k = models.PositiveSmallIntegerField(default=3)
    inputs = models.JSONField(default=list)
    folder = models.CharField(max_length=500, blank=True, help_text="Where uploaded files are kept")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0, help_text="Inputs answered or failed so far")
    failed = models.PositiveIntegerField(default=0, help_text="Inputs that could not be searched")
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta(LeasedWork.Meta):
        constraints = [
            models.CheckConstraint(condition=models.Q(done__lte=models.F("total")), name="search_job_done_le_total")
        ]

    def __str__(self):
        return f"search job {self.public_id} ({self.task.name}, {self.done}/{self.total}, {self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class SearchJobResult(models.Model):
    """The answer to one input of a search job, or why there is none."""

    job = models.ForeignKey(SearchJob, on_delete=models.CASCADE, related_name="results")
    position = models.PositiveIntegerField(help_text="Index of the input in the job")
    query = models.CharField(max_length=300, help_text="The identifier or file name searched")
    spectrum = models.ForeignKey("kb.Spectrum", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    label = models.CharField(max_length=64, blank=True)
    share = models.FloatField(null=True, blank=True, help_text="The winning label's share of the vote weight")
    is_target = models.BooleanField(null=True, blank=True)
    neighbours = models.JSONField(
        default=list, blank=True, help_text="specobjid, label, distance, weight per neighbour"
    )
    trust = models.JSONField(
        default=dict, blank=True, help_text="How far to trust the answer (inference.trust.Trust): in_distribution, ..."
    )
    background = models.JSONField(
        null=True,
        blank=True,
        help_text="Lens tasks: the background-line scan (z_source, snr, lines, detected, threshold); null otherwise",
    )
    weirdness = models.JSONField(
        null=True,
        blank=True,
        help_text="Outlier tasks: distance to the k-th nearest ordinary entry and whether it passes the rule",
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="search_job_result_one_per_input")]

    def __str__(self):
        return f"{self.query}: {self.label or self.error}"


class Operation(LeasedWork):
    """Work started from the site: an admin's pre-training of a new encoder, re-embedding or rebuilding of
    knowledge bases, or an astronomer's knowledge base of a chosen composition for one task. It ends with
    *candidate* knowledge-base versions, built but not in service, scored on the same test reserve as the
    versions in service (and searchable by naming them); an admin then promotes them (with the new
    checkpoint, in one switch) or discards them. Until then the versions in service answer every search.
    """

    class Kind(models.TextChoices):
        PRETRAIN = "pretrain", "pre-train a new encoder, embed, build every task's KB"
        EMBED = "embed", "embed what is not embedded, rebuild every task's KB"
        REBUILD = "rebuild", "rebuild knowledge bases (applying corrections)"
        COMPOSE = "compose", "build a knowledge base of a chosen composition"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"  # candidates built, waiting for the admin
        FAILED = "failed"
        CANCELLED = "cancelled"
        PROMOTED = "promoted"
        DISCARDED = "discarded"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    task = models.ForeignKey(
        "kb.SearchTask",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="For a rebuild: one task (empty: every task with a KB in service); for a composition: its task",
    )
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="For pre-training: preset and max_steps; for a composition: target_fraction, size, seed, index",
    )
    training_run = models.ForeignKey(
        TrainingRun,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The checkpoint the candidates use (a new one for pre-training)",
    )
    candidates = models.ManyToManyField("kb.KnowledgeBase", blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    history = models.JSONField(
        default=list, blank=True, help_text="Pre-training: [{step, train_loss, val_masked_mse, val_masked_chi2}]"
    )
    cancel_requested = models.BooleanField(default=False)
    requested_by = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        scope = self.task.name if self.task_id else "all tasks"
        return f"operation {self.pk}: {self.kind} ({scope}), {self.status}"

    @property
    def active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def queue(self) -> str:
        """The Celery queue its work goes to: pre-training to the GPU workers, the rest to the embedding ones."""
        return "training" if self.kind == self.Kind.PRETRAIN else "embedding"


class SurveySearch(LeasedWork):
    """Every ingested spectrum searched against one knowledge-base version: a hunt through the whole survey.

    The work is ``inference.services.bulk.bulk_search`` on a worker, writing CSV parts (every spectrum's vote)
    under ``folder``, resumable part by part. Once all are written, the spectra voted one of ``labels``
    become ``SurveyCandidate`` rows to browse; the parts hold every spectrum's row for download.
    """

    Status = RunStatus

    task = models.ForeignKey("kb.SearchTask", on_delete=models.PROTECT, related_name="survey_searches")
    knowledge_base = models.ForeignKey(
        "kb.KnowledgeBase",
        on_delete=models.PROTECT,
        related_name="survey_searches",
        help_text="The version that answers (the one in service when it was started)",
    )
    labels = models.JSONField(
        default=list, help_text="Labels of interest: spectra voted one of them are the candidates"
    )
    k = models.PositiveSmallIntegerField(default=3)
    requested_by = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL, related_name="survey_searches")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="Spectra in the survey when it was started")
    found = models.PositiveIntegerField(default=0, help_text="Candidates: spectra voted a label of interest")
    label_counts = models.JSONField(default=dict, blank=True, help_text="Spectra per voted label")
    folder = models.CharField(max_length=500, blank=True, help_text="Where its CSV parts are written")

    def __str__(self):
        return f"survey search {self.pk} ({self.task.name} v{self.knowledge_base.version}, {self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class WorkPart(models.Model):
    """One part of long work shared by the embedding workers (``inference.services.leases.part_claim``):
    a range of store rows, pending, then running with its worker's heartbeat (taken again once stale),
    then done."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"

    first_row = models.BigIntegerField(help_text="The first store row it covers")
    last_row = models.BigIntegerField(help_text="The last store row it covers")
    spectra = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    worker = models.CharField(max_length=200, blank=True, help_text="Host and process that took it last")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        abstract = True


class SurveyPart(WorkPart):
    """One part of a survey search, written as ``part-NNNNN.csv``."""

    survey = models.ForeignKey(SurveySearch, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField(help_text="Its file is part-NNNNN.csv")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["survey", "number"], name="survey_part_once")]
        ordering = ["survey", "number"]

    def __str__(self) -> str:
        return f"{self.survey} part {self.number}"


class EmbeddingPart(WorkPart):
    """Spectra of an embedding set still to embed (rows past its ``rows``), written in place in its stores."""

    embedding_set = models.ForeignKey(EmbeddingSet, on_delete=models.CASCADE, related_name="parts")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["embedding_set", "first_row"], name="embedding_part_once")]
        ordering = ["embedding_set", "first_row"]

    def __str__(self) -> str:
        return f"rows {self.first_row}-{self.last_row} of {self.embedding_set}"


class SurveyCandidate(models.Model):
    """A spectrum a survey search voted a label of interest, with its evidence."""

    survey = models.ForeignKey(SurveySearch, on_delete=models.CASCADE, related_name="candidates")
    spectrum = models.ForeignKey("kb.Spectrum", on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=64)
    share = models.FloatField(help_text="The label's share of the vote weight")
    distance = models.FloatField(help_text="L2 distance to the nearest neighbour")
    neighbours = models.JSONField(default=list, help_text="The K neighbours' specobjids, nearest first")
    distances = models.JSONField(default=list, help_text="Their L2 distances")
    in_distribution = models.BooleanField(
        null=True, help_text="Like the spectra the knowledge base was checked on (inference.trust); null: unknown"
    )
    known = models.BooleanField(
        null=True,
        help_text="Already catalogued with the label voted (the task's catalogs, or the examples of a task made from "
        "one): a known one, not a new find; null for searches from before it was recorded",
    )

    class Meta:
        ordering = ["survey", "-share", "distance", "spectrum"]
        constraints = [models.UniqueConstraint(fields=["survey", "spectrum"], name="survey_candidate_once")]
        indexes = [models.Index(fields=["survey", "-share", "distance", "spectrum"], name="survey_candidate_surest")]

    def __str__(self):
        return f"{self.spectrum_id}: {self.label} ({self.share:.2f})"


class ShareSweep(models.Model):
    """How a search task's precision and recall move with the share of targets in its knowledge base,
    under one checkpoint: one row per share, each knowledge base as large as its share allows, scored
    on the validation reserve (where choices are made; the test reserve scores the version built). What a
    person picks a share by on the task's page; recomputed whenever one of the task's versions is built."""

    task = models.ForeignKey("kb.SearchTask", on_delete=models.CASCADE, related_name="+")
    training_run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="+")
    rows = models.JSONField(
        default=list, help_text="[{target_fraction (null: natural), size, targets, precision, recall, f1, *_ci}]"
    )
    validation_spectra = models.PositiveIntegerField(default=0)
    validation_targets = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "training_run"], name="one_share_sweep_per_checkpoint")]

    def __str__(self):
        return f"share sweep of {self.task_id} under {self.training_run}"
