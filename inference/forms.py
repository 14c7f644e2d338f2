"""Forms of the search and batch pages: they parse what a person typed; the rules live in the services."""

from django import forms

from inference import index as vector_index
from inference.models import Operation
from inference.retriever import MAX_K, WEIGHTINGS
from kb.catalogs import catalog_choices
from kb.examples import size_check
from kb.labellings import LABELLINGS, labelling_labels
from kb.models import KnowledgeBase, SearchTask
from kb.selectors import search_tasks_visible
from training.model import PRESETS


class TaskChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, task):
        return task.title if task.published else f"{task.title} (private)"


class VisibleTasksForm(forms.Form):
    """A form whose ``task`` offers only the tasks ``user`` may see (``kb.selectors.search_tasks_visible``)."""

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        tasks = search_tasks_visible(user=user)
        self.fields["task"].queryset = tasks
        if "knowledge_base" in self.fields:  # another's private task is not to be reached through its versions
            self.fields["knowledge_base"].queryset = KnowledgeBase.objects.filter(task__in=tasks)


class SearchForm(VisibleTasksForm):
    task = TaskChoiceField(queryset=SearchTask.objects.all(), to_field_name="name", empty_label=None)
    identifier = forms.CharField(
        required=False,
        label="specobjid or plate-MJD-fiber",
        widget=forms.TextInput(attrs={"placeholder": "e.g. 0266-51630-0168"}),
    )
    ra = forms.FloatField(required=False, label="RA (°)", min_value=0, max_value=360)
    dec = forms.FloatField(required=False, label="Dec (°)", min_value=-90, max_value=90)
    radius_arcsec = forms.FloatField(required=False, initial=3.0, min_value=0.01, max_value=3600, label="within (″)")
    file = forms.FileField(required=False, label="or upload a spectrum (SDSS spec-lite FITS)")
    k = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_K,
        label="neighbours (K)",
        widget=forms.NumberInput(attrs={"placeholder": "as chosen"}),
        help_text="blank: the K the knowledge base was chosen and scored with",
    )
    weight_function = forms.ChoiceField(
        required=False,
        choices=[("", "as chosen"), *((w, w) for w in WEIGHTINGS)],
        label="weights",
        help_text="as chosen: the weighting and temperature the knowledge base was chosen and scored with",
    )
    knowledge_base = forms.ModelChoiceField(
        queryset=KnowledgeBase.objects.all(),
        required=False,
        widget=forms.HiddenInput,
        help_text="a version other than the one in service (to repeat an answer)",
    )

    def result_params(self) -> dict:
        """A valid search by identifier or position as the query string of its result page."""
        params = {key: value for key, value in self.cleaned_data.items() if key != "file" and value not in (None, "")}
        params["task"] = params["task"].name
        if "knowledge_base" in params:
            params["knowledge_base"] = params["knowledge_base"].pk
        return params

    def query(self) -> dict:
        """The keyword arguments of ``inference.services.search.search_query``, from a valid form."""
        data = self.cleaned_data
        upload = data.get("file")
        return {
            "task": data["task"],
            "identifier": (data.get("identifier") or "").strip(),
            "ra": data.get("ra"),
            "dec": data.get("dec"),
            "radius_arcsec": data.get("radius_arcsec") or 3.0,
            "upload": upload,
            "upload_name": upload.name if upload else "",
            "k": data.get("k"),
            "weight_function": data.get("weight_function") or None,
            "knowledge_base": data.get("knowledge_base"),
        }


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data] if data else []
        return [super(MultipleFileField, self).clean(f, initial) for f in files]


class BatchForm(VisibleTasksForm):
    task = TaskChoiceField(queryset=SearchTask.objects.all(), to_field_name="name", empty_label=None)
    identifiers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        label="identifiers, one per line (specobjid or plate-MJD-fiber)",
    )
    csv = forms.FileField(required=False, label="or a CSV list (a specobjid, plate_mjd_fiber or ra,dec header)")
    files = MultipleFileField(
        required=False,
        label="or spectrum files (SDSS spec-lite FITS)",
        help_text="one request carries about 20 MB of files (some 100 spectra): split a larger "
        "set over several jobs, or search ingested spectra by identifier",
    )
    k = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_K,
        label="neighbours (K)",
        widget=forms.NumberInput(attrs={"placeholder": "as chosen"}),
        help_text="blank: the K the knowledge base was chosen and scored with",
    )


def _all_labels() -> list[tuple[str, str]]:
    labels = dict.fromkeys(label for labelling in LABELLINGS for label in labelling_labels(labelling))
    return [(label, label) for label in labels]


class SurveySearchForm(VisibleTasksForm):
    task = TaskChoiceField(queryset=SearchTask.objects.all(), to_field_name="name", empty_label=None)
    labels = forms.MultipleChoiceField(
        choices=_all_labels,
        required=False,
        label="labels of interest",
        help_text="default: the task's targets; a classification task needs them named",
    )
    k = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_K,
        label="neighbours (K)",
        widget=forms.NumberInput(attrs={"placeholder": "as chosen"}),
        help_text="blank: the K the knowledge base was chosen and scored with",
    )


class OperationForm(forms.Form):
    # the cheapest first, and chosen unless another is
    kind = forms.ChoiceField(
        choices=[(kind, Operation.Kind(kind).label) for kind in ("rebuild", "embed", "pretrain")], initial="rebuild"
    )
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)
    task = forms.ModelChoiceField(
        queryset=SearchTask.objects.all(),
        to_field_name="name",
        required=False,
        empty_label="every task",
        help_text="for a rebuild",
    )
    preset = forms.ChoiceField(
        choices=[(name, name) for name in PRESETS], initial="small", help_text="for pre-training"
    )
    max_steps = forms.IntegerField(required=False, min_value=1, help_text="for pre-training (default: the preset's)")


class ComposeForm(forms.Form):
    """A knowledge base of a chosen composition for one task (``knowledge_base_candidate_start``)."""

    target_fraction = forms.FloatField(
        required=False,
        min_value=0.001,
        max_value=0.999,
        label="share of targets",
        help_text="between 0 and 1; empty: the labels in their natural proportions",
    )
    size = forms.IntegerField(
        required=False, min_value=1, label="entries", help_text="empty: as many as the share allows"
    )
    seed = forms.IntegerField(required=False, initial=0, min_value=0, help_text="which sample of the labelled spectra")
    index = forms.ChoiceField(
        choices=[(kind, kind) for kind in vector_index.CHOICES],
        initial="auto",
        help_text=f"flat is exact; auto is flat up to {vector_index.FLAT_MAX:,} entries, compressed beyond",
    )

    def start_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "target_fraction": data["target_fraction"],
            "size": data["size"],
            "seed": data["seed"] or 0,
            "index_kind": data["index"],
        }


class CatalogTaskForm(forms.Form):
    """A search task from your own catalog (``kb.services.catalog_tasks.catalog_task_create``)."""

    catalog = forms.FileField(
        required=False,
        label="your catalog (CSV or VOTable)",
        help_text="a specobjid, plate_mjd_fiber, plate + mjd + fiberid or ra + dec column; optionally a label column",
    )
    ingested_catalog = forms.ChoiceField(
        choices=[("", "—"), *catalog_choices()],
        required=False,
        label="or a catalog already ingested",
        help_text="its spectra with the label below are the examples",
    )
    target_label = forms.CharField(max_length=64, label="label of the targets", help_text="e.g. post-starburst")
    name = forms.SlugField(
        max_length=32, label="task name", help_text="a-z, 0-9, - and _; used in addresses and the API"
    )
    title = forms.CharField(max_length=100, required=False, help_text="default: from the label")
    radius_arcsec = forms.FloatField(
        initial=2.0, min_value=0.1, max_value=60, label="match radius (″)", help_text="for rows given by RA and Dec"
    )

    def clean_catalog(self):
        upload = self.cleaned_data.get("catalog")
        if upload:  # before it is read into memory
            try:
                size_check(upload.size, upload.name)
            except ValueError as error:
                raise forms.ValidationError(str(error)) from None
        return upload

    def create_kwargs(self) -> dict:
        data = self.cleaned_data
        upload = data["catalog"]
        return {
            "data": upload.read() if upload else None,
            "filename": upload.name if upload else "",
            "ingested": (data["ingested_catalog"], data["target_label"]) if data["ingested_catalog"] else None,
            "name": data["name"],
            "target_label": data["target_label"],
            "title": data["title"],
            "radius_arcsec": data["radius_arcsec"],
        }
