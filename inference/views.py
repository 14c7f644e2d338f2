"""The pipeline page: what is ingested, trained and embedded."""
from collections import Counter

from django.shortcuts import render

from inference.selectors import embeddings_in_service
from kb.models import Spectrum
from kb.selectors import bpt_labels, label_counts, last_ingest
from training.selectors import training_run_list


def pipeline(request):
    embedding_set, _ = embeddings_in_service()
    context = {
        "n_spectra": Spectrum.objects.count(),
        "labels": label_counts(),
        "bpt_consensus": Counter(bpt_labels().values()).most_common(),
        "runs": training_run_list(),
        "embedding_set": embedding_set,
        "ingest": last_ingest(),
    }
    return render(request, "inference/pipeline.html", context)
