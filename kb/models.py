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
        help_text="Median flux over rest-frame 5300-5850 Angstrom, 1e-17 erg s^-1 cm^-2 Angstrom^-1; "
        "the stored flux is divided by it"
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
        default=False, db_index=True,
        help_text="Reserved for testing (kb.knowledge.held_out): never in a knowledge base nor in pre-training",
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
        max_length=64, help_text="Normalised label: star-forming, composite, seyfert, liner, normal, agn, lens, "
        "or the outlier kind"
    )
    details = models.JSONField(default=dict, blank=True, help_text="Other catalog fields (grading, zlens, ...)")
    source_file = models.CharField(max_length=500)

    class Meta:
        ordering = ["spectrum_id", "catalog"]
        constraints = [
            models.UniqueConstraint(fields=["spectrum", "catalog"], name="catalog_label_one_per_catalog"),
        ]
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


class SearchTask(models.Model):
    """A search or classification task: a knowledge-base configuration (kb.knowledge.TASKS)."""

    name = models.SlugField(max_length=32, unique=True)
    title = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    labelling = models.CharField(max_length=16, help_text="How spectra are labelled: bpt5, bpt3, lens or outlier")
    target_labels = models.JSONField(default=list, blank=True, help_text="Labels that count as found; none "
                                     "for a classification task")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.title


class KnowledgeBase(models.Model):
    """One version of a task's knowledge base. Never changed once built: a change is a new version."""

    class Status(models.TextChoices):
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"

    task = models.ForeignKey(SearchTask, on_delete=models.PROTECT, related_name="knowledge_bases")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    size = models.PositiveIntegerField(help_text="Entries")
    target_fraction = models.FloatField(null=True, blank=True, help_text="Share of entries with a target label, "
                                        "as asked; empty for natural proportions")
    seed = models.IntegerField(default=0)
    composition = models.JSONField(default=dict, help_text="Entries per label")
    training_run = models.ForeignKey(
        "training.TrainingRun", on_delete=models.PROTECT, related_name="knowledge_bases",
        help_text="The encoder checkpoint whose embeddings the index holds",
    )
    index_kind = models.CharField(max_length=8, default="flat", help_text="flat (exact), hnsw or ivf")
    index_params = models.JSONField(default=dict, blank=True)
    index_metric = models.CharField(max_length=8, default="L2")
    index_recall = models.FloatField(null=True, blank=True, help_text="recall@3 against the exact index on "
                                     "held-out embeddings (approximate indexes only)")
    index_path = models.CharField(max_length=500, blank=True)
    evaluation = models.JSONField(
        default=dict, blank=True, help_text="Scores of its K=3 vote on the test reserve (held-out spectra): "
        "precision/recall/F1 for a search, accuracy/macro-F1 per class for a classification, with 95% intervals",
    )
    in_service = models.BooleanField(default=False, help_text="The version that answers this task's searches")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["task", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["task", "version"], name="knowledge_base_unique_version"),
            models.UniqueConstraint(fields=["task"], condition=models.Q(in_service=True),
                                    name="knowledge_base_one_in_service_per_task"),
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
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "spectrum"], name="kb_entry_one_per_spectrum"),
        ]
        indexes = [models.Index(fields=["knowledge_base", "label"])]

    def __str__(self):
        return f"{self.label}: {self.spectrum.plate_mjd_fiber} in {self.knowledge_base}"
