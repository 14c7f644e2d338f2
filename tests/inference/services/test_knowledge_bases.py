"""Knowledge bases: building versions, searching them, the commands, and an index build by a worker."""

import json
import shutil
from collections import Counter

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from inference import index as vector_index
from inference.representation import REPRESENTATIONS, represent
from inference.retriever import VotePolicy
from inference.selectors.embeddings import embedding_vectors
from inference.services import knowledge_bases
from inference.services.knowledge_bases import knowledge_base_build
from inference.services.search import load_retriever, search
from kb.bpt import bpt_class_from_lines, bpt_three_class
from kb.models import KBEntry, KnowledgeBase, SearchTask, Spectrum
from kb.reserves import TEST
from kb.selectors import spectrum_store, task_labels

pytestmark = pytest.mark.django_db


def lens_task():
    return SearchTask.objects.get(name="lens")


def test_a_build_samples_labelled_spectra_never_the_test_reserve_and_records_its_composition(trained):
    kb = knowledge_base_build(task=lens_task(), seed=1)
    entries = KBEntry.objects.filter(knowledge_base=kb)
    assert kb.status == "ready" and kb.in_service and kb.version == 1 and kb.training_run == trained
    assert not entries.filter(spectrum__held_out=True).exists()
    assert not entries.filter(spectrum__validation=True).exists()
    eligible = task_labels(labelling="lens", reserve="train")
    assert entries.count() == kb.size == len(eligible)  # no size: every eligible spectrum
    assert kb.composition == dict(Counter(entries.values_list("label", flat=True)))
    validation = Spectrum.objects.filter(validation=True)
    entry_z = [e.spectrum.z for e in entries.select_related("spectrum")]
    assert kb.calibration["n_validation"] == validation.count() > 0  # its trust is judged on the validation reserve
    assert (kb.calibration["z_min"], kb.calibration["z_max"]) == (min(entry_z), max(entry_z))
    lens = entries.filter(label="lens").first()
    assert lens.catalogs == ["talbot2021"] and "grading" in lens.details
    index, sidecar = vector_index.load(kb.index_path)
    assert index.ntotal == kb.size and sidecar["kb_version"] == 1 and sidecar["training_run"] == trained.pk
    assert set(vector_index.search(index, np.zeros((1, index.d)), kb.size).ids[0]) == set(
        entries.values_list("spectrum_id", flat=True)
    )  # ids are spectrum keys


def test_a_new_version_takes_over_service_and_the_old_one_stays_resolvable(trained):
    first = knowledge_base_build(task=lens_task(), seed=1)
    second = knowledge_base_build(task=lens_task(), size=10, target_fraction=0.3, seed=2)
    first.refresh_from_db()
    assert (first.in_service, second.in_service, second.version) == (False, True, 2)
    assert second.composition == {"other": 7, "lens": 3}
    assert KBEntry.objects.filter(knowledge_base=first).count() == first.size  # unchanged
    assert (first.index_path != second.index_path) and vector_index.load(first.index_path)[1]["kb_version"] == 1
    spectrum = Spectrum.objects.filter(held_out=True).first()
    assert search(task="lens", spectrum=spectrum, knowledge_base=first).kb_version == 1


def test_an_impossible_composition_writes_nothing(trained):
    with pytest.raises(ValueError, match="targets and .* others are eligible"):
        knowledge_base_build(task=lens_task(), size=10_000, target_fraction=0.5)
    assert not KnowledgeBase.objects.exists()


def test_a_search_answers_with_its_evidence(trained):
    kb = knowledge_base_build(task=SearchTask.objects.get(name="bpt5"), seed=0)
    query = Spectrum.objects.filter(held_out=True).first()
    answer = search(task="bpt5", spectrum=query)
    assert answer.kb_version == kb.version and answer.is_target is None
    assert answer.checkpoint == f"run {kb.training_run_id}, step {kb.training_run.metrics['best_step']}"
    assert len(answer.neighbours) == 3 and sum(n.weight for n in answer.neighbours) == pytest.approx(1.0)
    distances = [n.distance for n in answer.neighbours]
    assert distances == sorted(distances)
    # the neighbours are the nearest KB entries in the version's representation and metric, computed directly
    entries = list(KBEntry.objects.filter(knowledge_base=kb).select_related("spectrum"))
    policy, metric = VotePolicy.from_dict(kb.policy), load_retriever(kb).metric
    vectors = metric.transform(_served(trained, policy, [e.spectrum.store_row for e in entries]))
    q = metric.transform(_served(trained, policy, [query.store_row]))[0]
    nearest = np.argsort(np.linalg.norm(vectors - q, axis=1))[:3]
    assert [n.spectrum_id for n in answer.neighbours] == [entries[i].spectrum_id for i in nearest]
    np.testing.assert_allclose(distances, np.linalg.norm(vectors[nearest] - q, axis=1), rtol=1e-4)
    assert answer.shares[answer.label] == answer.share == max(answer.shares.values())
    for n in answer.neighbours:
        assert n.label == next(e.label for e in entries if e.spectrum_id == n.spectrum_id)
        assert n.catalogs == ["galspecextra", "emissionlinesport"]


def _served(run, policy: VotePolicy, store_rows: list[int]) -> np.ndarray:
    """Spectra at ``store_rows`` in ``policy``'s representation, straight from the stores (no selector)."""
    (flux, valid), ivar = spectrum_store().read(), spectrum_store().read_ivar()
    z = [Spectrum.objects.get(store_row=row).z for row in store_rows]
    embedding = embedding_vectors(training_run=run, store_rows=store_rows)
    arrays = (embedding, flux[store_rows], valid[store_rows], np.array(z), ivar[store_rows])
    return represent(policy.representation, *arrays, window_scale=policy.window_scale)


@pytest.mark.parametrize("representation", REPRESENTATIONS)
def test_a_version_answers_in_the_representation_chosen_on_validation(trained, monkeypatch, representation):
    scored = knowledge_bases._scored  # this small survey's validation reserve is too small: the test's stands in
    monkeypatch.setattr(knowledge_bases, "_scored", lambda task, reserve: scored(task, TEST))
    task = SearchTask.objects.get(name="bpt3")
    kb = knowledge_base_build(task=task, seed=0)
    weighed = {c["representation"] for c in kb.policy_validation["candidates"]}
    assert weighed == set(REPRESENTATIONS)  # every representation was weighed on validation ...
    best = max(kb.policy_validation["candidates"], key=lambda c: c["f1"])
    assert kb.policy_validation["score"] == best["f1"]  # ... and the best of them serves
    assert kb.policy["representation"] == best["representation"]
    monkeypatch.setattr(knowledge_bases, "REPRESENTATIONS", (representation,))
    kb = knowledge_base_build(task=task, seed=0)
    assert kb.policy["representation"] == representation
    query = Spectrum.objects.filter(held_out=True).first()
    answer = search(task="bpt3", spectrum=query)
    assert answer.policy == kb.policy
    entries = {e.spectrum_id: e.spectrum.store_row for e in KBEntry.objects.filter(knowledge_base=kb)}
    policy, metric = VotePolicy.from_dict(kb.policy), load_retriever(kb).metric
    q = metric.transform(_served(trained, policy, [query.store_row]))[0]
    rows = [entries[n.spectrum_id] for n in answer.neighbours]
    expected = np.linalg.norm(metric.transform(_served(trained, policy, rows)) - q, axis=1)
    np.testing.assert_allclose([n.distance for n in answer.neighbours], expected, rtol=1e-4)


def test_an_answer_sets_the_querys_own_lines_and_class_beside_the_vote(trained):
    kb = knowledge_base_build(task=SearchTask.objects.get(name="bpt3"), seed=0)
    disagreeing = 0
    for query in Spectrum.objects.filter(held_out=True):
        answer = search(task="bpt3", spectrum=query)
        context = answer.context
        assert context.voters == sum(n.label == answer.label for n in answer.neighbours)
        assert context.own_lines == bpt_class_from_lines(query.lines) and context.sdss_class.startswith("GALAXY")
        own = bpt_three_class(context.own_lines)
        assert bool(context.disagreements) == (own != answer.label), (own, answer.label, context.disagreements)
        disagreeing += bool(context.disagreements)
        scores = kb.evaluation["per_class"][answer.label]
        assert (context.precision, context.recall) == (scores["precision"], scores["recall"])
        assert context.scored_on == "the test reserve"
    assert 0 < disagreeing < Spectrum.objects.filter(held_out=True).count()  # both cases met
    query.sdss_class, query.lines = "QSO", {}
    context = search(task="bpt3", spectrum=query).context
    assert context.own_lines is None and context.disagreements == [
        "the SDSS pipeline classifies it as a QSO; the knowledge base holds galaxies"
    ]
    lens = knowledge_base_build(task=lens_task(), seed=1)
    answer = search(task="lens", spectrum=query)
    assert (answer.context.precision, answer.context.recall) == (
        lens.evaluation["precision"],
        lens.evaluation["recall"],
    )


def test_a_kb_member_is_not_its_own_neighbour(trained):
    kb = knowledge_base_build(task=lens_task(), seed=1)
    member = KBEntry.objects.filter(knowledge_base=kb).first().spectrum
    answer = search(task="lens", spectrum=member)
    assert member.pk not in [n.spectrum_id for n in answer.neighbours] and len(answer.neighbours) == 3


@pytest.mark.parametrize("representation", REPRESENTATIONS)
def test_a_file_search_matches_the_search_of_the_same_ingested_spectrum(trained, survey, monkeypatch, representation):
    monkeypatch.setattr(knowledge_bases, "REPRESENTATIONS", (representation,))  # the file's ivar too, for the lines
    knowledge_base_build(task=lens_task(), seed=1)
    query = Spectrum.objects.filter(held_out=True).first()
    by_file = search(task="lens", path=query.source_file)
    by_id = search(task="lens", spectrum=query)
    assert [n.spectrum_id for n in by_file.neighbours] == [n.spectrum_id for n in by_id.neighbours]
    np.testing.assert_allclose(
        [n.distance for n in by_file.neighbours], [n.distance for n in by_id.neighbours], atol=1e-3
    )


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "compressed"])
def test_an_approximate_index_records_its_recall_and_search_settings(trained, kind):
    kb = knowledge_base_build(task=lens_task(), index_kind=kind, seed=1)
    assert kb.index_kind == kind and 0.99 <= kb.index_recall <= 1.0
    sidecar = vector_index.load(kb.index_path)[1]
    assert sidecar["recall_at_3"] == kb.index_recall and sidecar["params"] == kb.index_params


def test_auto_builds_a_flat_index_at_this_size_and_a_compressed_one_past_the_limit(trained, monkeypatch):
    query = Spectrum.objects.filter(held_out=True).first()
    flat = knowledge_base_build(task=lens_task(), seed=1)
    assert flat.index_kind == "flat" and flat.index_params["kind"] == "flat"
    exact = search(task="lens", spectrum=query)
    monkeypatch.setattr(vector_index, "FLAT_MAX", flat.size - 1)
    compressed = knowledge_base_build(task=lens_task(), seed=1)
    assert compressed.index_kind == "compressed" and compressed.index_recall >= 0.99
    assert isinstance(load_retriever(compressed).index, vector_index.Reranked)
    answer = search(task="lens", spectrum=query)
    assert answer.knowledge_base == compressed.pk
    assert [n.spectrum_id for n in answer.neighbours] == [n.spectrum_id for n in exact.neighbours]


def test_fewer_entries_than_k_vote_with_what_there_is(trained):
    knowledge_base_build(task=lens_task(), size=2, target_fraction=0.5, seed=0)
    answer = search(task="lens", spectrum=Spectrum.objects.filter(held_out=True).first(), k=5)
    assert len(answer.neighbours) == 2 and answer.label in ("lens", "other")


def test_the_commands_build_and_search(trained, capsys):
    call_command("build_kb", "--task", "liner", "--seed", "3", verbosity=0)
    kb = KnowledgeBase.objects.get(task__name="liner")
    assert "liner knowledge base v1 in service" in capsys.readouterr().out
    query = Spectrum.objects.filter(held_out=True).first()
    call_command("search", query.plate_mjd_fiber, "--task", "liner", "--json")
    answer = json.loads(capsys.readouterr().out)
    assert answer["kb_version"] == kb.version and len(answer["neighbours"]) == 3
    assert answer["is_target"] == (answer["label"] == "liner")
    call_command("search", query.specobjid, "--task", "liner")
    out = capsys.readouterr().out
    assert f"knowledge base v{kb.version}" in out and "weight" in out
    assert f"{answer['context']['voters']} of 3 neighbours" in out and "on the test reserve: precision" in out


def test_the_commands_refuse_bad_input_clearly(trained):
    with pytest.raises(CommandError, match="no search task 'quasars'"):
        call_command("build_kb", "--task", "quasars")
    with pytest.raises(CommandError, match="has no knowledge base in service"):
        call_command("search", Spectrum.objects.first().specobjid, "--task", "outlier")
    with pytest.raises(CommandError, match="no ingested spectrum has the specobjid"):
        call_command("search", "9999-55555-0001", "--task", "lens")
    assert not KnowledgeBase.objects.exists()


def test_a_bad_file_or_option_gets_a_clear_error(trained, tmp_path):
    knowledge_base_build(task=lens_task(), seed=1)
    junk = tmp_path / "spec-0001-50000-0001.fits"
    junk.write_bytes(b"not a FITS file at all")
    with pytest.raises(CommandError, match="spec-0001-50000-0001.fits: "):
        call_command("search", str(junk), "--task", "lens")
    query = Spectrum.objects.filter(held_out=True).first().specobjid
    with pytest.raises(CommandError, match="unknown weight function 'cubic'"):
        call_command("search", query, "--task", "lens", "--weights", "cubic")
    with pytest.raises(CommandError, match="k must be 1 to 15"):
        call_command("search", query, "--task", "lens", "-k", "0")


def test_a_missing_index_is_reported_not_crashed_on(trained):
    kb = knowledge_base_build(task=lens_task(), seed=1)
    shutil.rmtree(kb.index_path)
    with pytest.raises(ValueError, match="index files are missing; an administrator rebuilds it"):
        search(task="lens", spectrum=Spectrum.objects.first())


def test_a_built_knowledge_base_is_scored_on_the_test_reserve(searchable):
    from inference.services.search import search as search_one
    from kb.labellings import LABELLINGS
    from kb.selectors import task_labels

    lens = searchable["lens"]
    labelled = set().union(*(task_labels(labelling=name, reserve="test") for name in LABELLINGS))
    truth = task_labels(labelling="lens", reserve="test")
    found = tp = fn = 0
    for spectrum in Spectrum.objects.filter(pk__in=labelled):
        target = spectrum.pk in truth and truth[spectrum.pk].label == "lens"
        predicted = search_one(task="lens", spectrum=spectrum).is_target
        found += predicted
        tp += target and predicted
        fn += target and not predicted
    assert lens.evaluation["test_spectra"] == len(labelled) > 0
    assert lens.evaluation["recall"] == pytest.approx(tp / (tp + fn))
    assert lens.evaluation["precision"] == pytest.approx(tp / found if found else 0.0)
    lo, hi = lens.evaluation["f1_ci"]
    assert lo <= lens.evaluation["f1"] <= hi

    bpt3 = searchable["bpt3"]
    reserve = task_labels(labelling="bpt3", reserve="test")
    correct = sum(
        search_one(task="bpt3", spectrum=s).label == reserve[s.pk].label
        for s in Spectrum.objects.filter(pk__in=reserve)
    )
    assert bpt3.evaluation["accuracy"] == pytest.approx(correct / len(reserve))
    assert set(bpt3.evaluation["per_class"]) >= set(bpt3.composition)


def test_a_failed_or_abandoned_build_is_in_the_audit_trail(trained):
    from inference.services.knowledge_bases import knowledge_base_abandon
    from kb.models import AuditEvent
    from kb.services.knowledge_bases import knowledge_base_fail

    first, second = (knowledge_base_build(task=lens_task(), seed=seed, promote=False) for seed in (1, 2))
    knowledge_base_fail(knowledge_base=first, error="the index would not fit")
    knowledge_base_abandon(knowledge_base=second, error="the worker stopped")
    events = {e.action: e for e in AuditEvent.objects.filter(action__startswith="knowledge_base_")}
    assert events["knowledge_base_failed"].subject == f"knowledge base {first.pk}"
    assert events["knowledge_base_failed"].reason == "the index would not fit"
    assert events["knowledge_base_abandoned"].after == {"status": "failed"}


def test_a_lens_version_chooses_its_background_rule_among_every_threshold_host_and_join(searchable, monkeypatch):
    from inference.background_lines import COMBINES, HOSTS, THRESHOLDS, BackgroundRule

    scored = knowledge_bases._scored  # this small survey's validation reserve is too small: the test's stands in
    monkeypatch.setattr(knowledge_bases, "_scored", lambda task, reserve: scored(task, TEST))
    kb = searchable["lens"]
    rule = knowledge_bases.knowledge_base_background_choose(knowledge_base=kb, retriever=load_retriever(kb))
    weighed = {(r["hosts"], r["combine"], r["threshold"]) for r in rule["validation"]}
    assert weighed == {(h, c, t) for h in HOSTS for c in COMBINES for t in THRESHOLDS}
    best = max(r["f1"] for r in rule["validation"])
    assert rule["f1"] >= best  # the vote alone, or the best candidate
    if rule["threshold"] is not None:  # the first candidate of that score: the simplest of equals
        first = next(r for r in rule["validation"] if r["f1"] == rule["f1"])
        assert BackgroundRule.from_dict(rule) == BackgroundRule.from_dict(first)
