"""Spectra and their catalog labels.

The preprocessed flux of each spectrum lives in the array store (kb/store.py) at row ``store_row``;
the database holds what is searched and filtered on.
"""

from django.db import models


class Spectrum(models.Model):
    """One ingested SDSS (or mock-survey) spectrum."""

    specobjid = models.CharField(
        max_length=20,
        unique=True,
        help_text="SDSS SPECOBJID as decimal digits (ids of plates >= 8192 exceed a signed 64-bit integer)",
    )
    plate = models.PositiveIntegerField()
    mjd = models.PositiveIntegerField(help_text="Modified Julian Date of the observation, days")
    fiberid = models.PositiveIntegerField()
    ra = models.FloatField(null=True, help_text="Right ascension of the fibre, degrees J2000")
    dec = models.FloatField(null=True, help_text="Declination of the fibre, degrees J2000")
    z = models.FloatField(help_text="Spectroscopic redshift (SPECOBJ Z)")
    z_err = models.FloatField(null=True)
    zwarning = models.IntegerField(default=0)
    sdss_class = models.CharField(max_length=8, blank=True, help_text="SDSS pipeline CLASS: GALAXY, QSO, STAR")
    subclass = models.CharField(max_length=32, blank=True)
    sn_median = models.FloatField(null=True, help_text="Median signal-to-noise per pixel")
    vdisp = models.FloatField(null=True, help_text="Stellar velocity dispersion, km/s")
    run2d = models.CharField(max_length=16, blank=True)
    norm = models.FloatField(
        help_text="Median flux over rest-frame 5300-5850 Angstrom (4600-4800 where that holds too few pixels, "
        "kb.preprocess), 1e-17 erg s^-1 cm^-2 Angstrom^-1; the stored flux is divided by it"
    )
    valid_fraction = models.FloatField(help_text="Fraction of the 3688 grid pixels that are valid")
    lines = models.JSONField(
        default=dict,
        blank=True,
        help_text="SPZLINE emission-line fits by LINENAME: flux and flux_err in 1e-17 erg s^-1 cm^-2, "
        "ew in Angstrom, sigma in km/s",
    )
    store_row = models.PositiveIntegerField(unique=True, help_text="Row in the preprocessed-flux array store")
    held_out = models.BooleanField(
        default=False,
        db_index=True,
        help_text="Reserved for testing (kb.search_tasks.reserve): never in a knowledge base nor in pre-training",
    )
    validation = models.BooleanField(
        default=False,
        db_index=True,
        help_text="Reserved for choices (kb.search_tasks.reserve): pre-training's checkpoint, experiment settings "
        "and the trust signals are chosen on it; never in a knowledge base nor trained on",
    )
    source_file = models.CharField(max_length=500)
    source_sha256 = models.CharField(max_length=64)
    ingested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["plate", "mjd", "fiberid"]
        verbose_name_plural = "spectra"
        indexes = [models.Index(fields=["dec", "ra"], name="spectrum_position")]  # cone searches by RA/Dec
        constraints = [
            models.UniqueConstraint(fields=["plate", "mjd", "fiberid"], name="spectrum_unique_plate_mjd_fiber"),
            models.CheckConstraint(condition=models.Q(z__gte=-0.01), name="spectrum_z_not_negative"),
            models.CheckConstraint(condition=models.Q(norm__gt=0), name="spectrum_norm_positive"),
            models.CheckConstraint(
                condition=~(models.Q(held_out=True) & models.Q(validation=True)), name="spectrum_one_reserve"
            ),
        ]

    def __str__(self):
        return f"spec-{self.plate_mjd_fiber} (specobjid {self.specobjid})"

    @property
    def plate_mjd_fiber(self) -> str:
        return f"{self.plate:04d}-{self.mjd:05d}-{self.fiberid:04d}"


class Catalog(models.TextChoices):
    GALSPECEXTRA = "galspecextra", "MPA-JHU galSpecExtra (DR8)"
    EMISSIONLINESPORT = "emissionlinesport", "Portsmouth emissionLinesPort (DR12)"
    TALBOT2021_LENS = "talbot2021", "eBOSS strong-lens candidates (Talbot et al. 2021)"
    BARON2017_OUTLIER = "baron2017", "SDSS outliers (Baron & Poznanski 2017)"


class CatalogLabel(models.Model):
    """What one published catalog says about one spectrum, as published and normalised."""

    spectrum = models.ForeignKey(Spectrum, on_delete=models.CASCADE, related_name="catalog_labels")
    catalog = models.CharField(max_length=32, choices=Catalog.choices)
    value = models.CharField(max_length=64, help_text="The catalog's own value, e.g. BPTCLASS 4 or 'LINER'")
    label = models.CharField(
        max_length=64,
        help_text="Normalised label: star-forming, composite, seyfert, liner, normal, agn, lens, or the outlier kind",
    )
    details = models.JSONField(default=dict, blank=True, help_text="Other catalog fields (grading, zlens, ...)")
    source_file = models.CharField(max_length=500)

    class Meta:
        ordering = ["spectrum_id", "catalog"]
        constraints = [models.UniqueConstraint(fields=["spectrum", "catalog"], name="catalog_label_one_per_catalog")]
        indexes = [models.Index(fields=["catalog", "label"])]

    def __str__(self):
        return f"{self.get_catalog_display()}: {self.label} ({self.spectrum.plate_mjd_fiber})"


class IngestRun(models.Model):
    """One `ingest` of a folder: what it found, added, skipped and rejected."""

    source = models.CharField(max_length=500)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"ingest of {self.source} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def source_name(self) -> str:
        """The folder's own name, as pages show it: never the server's path to it."""
        return self.source.rstrip("/").rsplit("/", 1)[-1]


class SearchTask(models.Model):
    """A search or classification task: a knowledge-base configuration. The shipped ones are
    kb.search_tasks.TASKS; an astronomer's own (labelling ``catalog``) takes its targets from a catalog they
    uploaded (``TaskExample``) and is private to them until a curator publishes it."""

    name = models.SlugField(max_length=32, unique=True)
    title = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    labelling = models.CharField(
        max_length=16, help_text="How spectra are labelled: bpt5, bpt3, lens, outlier, or catalog (its own examples)"
    )
    target_labels = models.JSONField(
        default=list, blank=True, help_text="Labels that count as found; none for a classification task"
    )
    consensus_flags = models.PositiveSmallIntegerField(
        default=3,
        help_text="Independent flags proposing the same label that correct an entry on their own; "
        "0: only a curator's decision does",
    )
    curator_decides = models.BooleanField(default=True, help_text="A curator accepting a flag corrects the entry")
    owner = models.ForeignKey(
        "auth.User",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="search_tasks",
        help_text="Who made it from their catalog; none for a shipped task",
    )
    published = models.BooleanField(default=True, help_text="Everyone sees it; else only its owner and curators")
    catalog = models.JSONField(
        default=dict, blank=True, help_text="The uploaded catalog: file, sha256, rows, matched, unmatched (with why)"
    )
    created_at = models.DateTimeField(auto_now_add=True, null=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.title

    @property
    def scores(self) -> tuple[str, ...]:
        """The scores that rate this task's knowledge bases on the test reserve (keys of their ``evaluation``)."""
        return ("precision", "recall", "f1") if self.target_labels else ("accuracy", "macro_f1")


class TaskExample(models.Model):
    """A spectrum an astronomer's catalog names for their task, with the label the catalog gives it (its
    target, or a labelled non-target) and how it was matched."""

    task = models.ForeignKey(SearchTask, on_delete=models.CASCADE, related_name="examples")
    spectrum = models.ForeignKey(Spectrum, on_delete=models.PROTECT, related_name="task_examples")
    label = models.CharField(max_length=64)
    row = models.PositiveIntegerField(help_text="Its row in the uploaded catalog (1: the first after the header)")
    matched_by = models.CharField(max_length=16, help_text="specobjid, plate_mjd_fiber or position")
    separation_arcsec = models.FloatField(null=True, blank=True, help_text="For a match by position")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "spectrum"], name="one_example_per_spectrum")]

    def __str__(self):
        return f"{self.spectrum_id} as {self.label} in {self.task_id}"


class KnowledgeBase(models.Model):
    """One version of a task's knowledge base. Never changed once built: a change is a new version."""

    class Status(models.TextChoices):
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"
        DISCARDED = "discarded"  # built, judged not good enough, never to be promoted

    task = models.ForeignKey(SearchTask, on_delete=models.PROTECT, related_name="knowledge_bases")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    size = models.PositiveIntegerField(help_text="Entries")
    target_fraction = models.FloatField(
        null=True, blank=True, help_text="Share of entries with a target label, as asked; empty for natural proportions"
    )
    seed = models.IntegerField(default=0)
    composition = models.JSONField(default=dict, help_text="Entries per label")
    training_run = models.ForeignKey(
        "training.TrainingRun",
        on_delete=models.PROTECT,
        related_name="knowledge_bases",
        help_text="The encoder checkpoint whose embeddings the index holds",
    )
    index_kind = models.CharField(max_length=8, default="flat", help_text="flat (exact), hnsw or ivf")
    index_params = models.JSONField(default=dict, blank=True)
    index_metric = models.CharField(max_length=8, default="L2")
    index_recall = models.FloatField(
        null=True,
        blank=True,
        help_text="recall@3 against the exact index on held-out embeddings (approximate indexes only)",
    )
    index_path = models.CharField(max_length=500, blank=True)
    evaluation = models.JSONField(
        default=dict,
        blank=True,
        help_text="Scores of its K=3 vote on the test reserve (held-out spectra): "
        "precision/recall/F1 for a search, accuracy/macro-F1 per class for a classification, with 95% intervals",
    )
    calibration = models.JSONField(
        default=dict,
        blank=True,
        help_text="What answers are judged against (inference.trust.calibrate): the L2 distances of validation "
        "spectra to their nearest entry, as quantiles, and the entries' z range",
    )
    in_service = models.BooleanField(default=False, help_text="The version that answers this task's searches")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task", "-version"]
        permissions = [("operate_knowledgebase", "Can retrain, re-embed, rebuild, promote and discard (admin)")]
        constraints = [
            models.UniqueConstraint(fields=["task", "version"], name="knowledge_base_unique_version"),
            models.UniqueConstraint(
                fields=["task"], condition=models.Q(in_service=True), name="knowledge_base_one_in_service_per_task"
            ),
            models.CheckConstraint(
                condition=models.Q(target_fraction__isnull=True)
                | models.Q(target_fraction__gt=0, target_fraction__lt=1),
                name="knowledge_base_target_fraction_open_unit",
            ),
        ]

    def __str__(self):
        return f"{self.task.name} KB v{self.version} ({self.size} entries, {self.status})"


class KBEntry(models.Model):
    """One labelled spectrum in a knowledge base, with the catalogs its label came from."""

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="entries")
    spectrum = models.ForeignKey(Spectrum, on_delete=models.PROTECT, related_name="kb_entries")
    label = models.CharField(max_length=64)
    catalogs = models.JSONField(default=list, help_text="Catalogs the label came from")
    details = models.JSONField(default=dict, blank=True, help_text="e.g. the outlier kind, the lens grading")

    class Meta:
        ordering = ["knowledge_base", "spectrum"]
        verbose_name = "KB entry"
        verbose_name_plural = "KB entries"
        constraints = [models.UniqueConstraint(fields=["knowledge_base", "spectrum"], name="kb_entry_one_per_spectrum")]
        indexes = [models.Index(fields=["knowledge_base", "label"])]

    def __str__(self):
        return f"{self.label}: {self.spectrum.plate_mjd_fiber} in {self.knowledge_base}"


EXCLUDE = "exclude"  # a proposed label meaning: this spectrum does not belong in the task's knowledge base


class Flag(models.Model):
    """Someone's claim that a spectrum is mislabelled in a task's knowledge base, with the label they propose."""

    class Status(models.TextChoices):
        OPEN = "open"
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        WITHDRAWN = "withdrawn"

    task = models.ForeignKey(SearchTask, on_delete=models.PROTECT, related_name="flags")
    spectrum = models.ForeignKey(Spectrum, on_delete=models.PROTECT, related_name="flags")
    entry = models.ForeignKey(
        KBEntry,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="flags",
        help_text="The entry flagged (its KB version is what the flagger saw)",
    )
    label = models.CharField(max_length=64, help_text="The label when flagged")
    proposed_label = models.CharField(max_length=64, help_text=f"The label proposed, or '{EXCLUDE}' to leave it out")
    reason = models.TextField()
    raised_by = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="flags_raised")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True, help_text="The curator's note on accepting or rejecting")

    class Meta:
        ordering = ["-created_at"]
        permissions = [("review_flag", "Can accept or reject flags (curator)")]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "spectrum", "raised_by"],
                condition=models.Q(status="open"),
                name="flag_one_open_per_user_and_entry",
            ),
            models.CheckConstraint(
                condition=~models.Q(proposed_label=models.F("label")), name="flag_proposes_a_change"
            ),
        ]
        indexes = [models.Index(fields=["task", "spectrum", "status"])]

    def __str__(self):
        return f"flag {self.pk}: {self.label} -> {self.proposed_label} ({self.status})"


class Correction(models.Model):
    """A decided change to a spectrum's label in a task, applied by every knowledge-base version built after it."""

    class Rule(models.TextChoices):
        CURATOR = "curator", "a curator's decision"
        CONSENSUS = "consensus", "agreeing flags"

    task = models.ForeignKey(SearchTask, on_delete=models.PROTECT, related_name="corrections")
    spectrum = models.ForeignKey(Spectrum, on_delete=models.PROTECT, related_name="corrections")
    label = models.CharField(max_length=64, help_text="The catalog label it replaces")
    corrected_label = models.CharField(max_length=64, help_text=f"The new label, or '{EXCLUDE}'")
    rule = models.CharField(max_length=16, choices=Rule.choices)
    decided_by = models.ForeignKey(
        "auth.User",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The curator; empty when agreeing flags decided",
    )
    flags = models.ManyToManyField(Flag, related_name="corrections")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    active = models.BooleanField(default=True, help_text="False once a later correction replaces it")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "spectrum"], condition=models.Q(active=True), name="correction_one_active_per_entry"
            )
        ]

    def __str__(self):
        return f"{self.task.name}: {self.spectrum.plate_mjd_fiber} {self.label} -> {self.corrected_label}"


class AuditEvent(models.Model):
    """One change, as it happened: who, when, what it was before and after, and why. Never edited."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        "auth.User",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty for the system (a consensus, a worker)",
    )
    action = models.CharField(max_length=48, db_index=True)
    subject = models.CharField(max_length=100, help_text="What changed, e.g. 'flag 12' or 'knowledge base 7'")
    task = models.ForeignKey(SearchTask, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    spectrum = models.ForeignKey(Spectrum, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["task", "spectrum"])]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor or 'system'}: {self.action} {self.subject}"
