"""Forms of the curation pages: they parse what a person typed; the rules live in kb.services.curation."""

from django import forms

from kb.models import EXCLUDE, SearchTask
from kb.selectors import task_label_choices


def label_choices(task: SearchTask) -> list[tuple[str, str]]:
    return [(label, label) for label in task_label_choices(task=task)] + [(EXCLUDE, "exclude from the knowledge base")]


class FlagForm(forms.Form):
    proposed_label = forms.ChoiceField(label="the label it should have")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), label="why (what you see in the spectrum)")

    def __init__(self, *args, task: SearchTask, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["proposed_label"].choices = [("", "— choose —"), *label_choices(task)]


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=[("accept", "accept"), ("reject", "reject")])  # the button pressed
    label = forms.ChoiceField(required=False, label="correct it to")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="note (kept in the audit trail)")

    def __init__(self, *args, task: SearchTask, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label"].choices = label_choices(task)
