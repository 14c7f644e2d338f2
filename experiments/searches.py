"""The searches of the paper on one mixed test set: Tables 3-4 (precision, recall and F1 of the LINER,
lens and outlier searches), Figure 4 (the share of lenses in the KB), Figure 5 (K), Table A1 (distances
and weight functions) and the LINER case study of appendix B.2."""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.spatial.distance import pdist

from experiments.baselines import shortcut_knn
from experiments.data import Data, EvaluationConfig, config_policy
from inference import index as vector_index
from inference import metrics
from inference.background_lines import BackgroundRule, quiet_host
from inference.retriever import WEIGHTINGS, Retriever, VotePolicy, knn_vote
from inference.selectors.lines import background_lines_get
from inference.services.search import load_retriever, query_embedding, query_vector, read_query
from kb.bpt import bpt_ratios
from kb.composition import compose
from kb.labellings import TASKS
from kb.mock.populations import SOURCE_SNR
from kb.mock.survey import SETTINGS, galaxy_again, render_again
from kb.models import KnowledgeBase, Spectrum
from kb.reserves import TEST, TRAIN, VALIDATION
from kb.reserves import reserve as reserve_of
from kb.selectors import task_labels

SEARCH_TASKS = ("liner", "lens", "outlier", "eplusa")
# Targets' share of the spectra a search runs over in reality, for ``precision_at_base_rate``: an order of
# magnitude, not a measurement. LINERs: about a tenth of SDSS galaxies with classifiable lines (Kewley et
# al. 2006), a few percent of all; lens candidates: about 0.1% of BOSS galaxy spectra (Talbot et al.
# 2021: some 1,500 in 1.5 million); Baron & Poznanski (2017)'s outliers: a few percent; E+A galaxies:
# 0.2% of SDSS DR5 galaxies (Goto 2007: 564 of 266,000).
BASE_RATES = {"liner": 0.05, "lens": 0.001, "outlier": 0.02, "eplusa": 0.002}


# --- Tables 3-4, Figures 4-5 --------------------------------------------------------------------------


def search_experiments(data: Data, kbs: dict[str, KnowledgeBase], config: EvaluationConfig, log) -> tuple[dict, dict]:
    """Every search experiment on one mixed test set, and the set's size and targets."""
    log("Tables 3-4: LINER, lens and outlier searches on one mixed test set")
    mixed = mixed_test_set()
    searches = {name: Search.of(data, kbs[name], mixed, config.max_k) for name in SEARCH_TASKS}
    results = {
        "search": {name: searches[name].report(config) for name in SEARCH_TASKS},
        "search_base_rates": {},
        "search_baselines": {
            "shortcut_knn": {name: shortcut(data, searches[name], mixed, config) for name in SEARCH_TASKS},
            "rule_only": {
                name: searches[name].rule_only(config) for name in SEARCH_TASKS if searches[name].detected is not None
            },
        },
        "search_vote_only": {name: searches[name].vote_only(config) for name in SEARCH_TASKS},
        "outlier_recall_by_kind": recall_by_kind(searches["outlier"], mixed, config),
        "lens_recall_by_source_snr": recall_by_source_snr(searches["lens"], mixed, config),
    }
    for name in SEARCH_TASKS:
        predicted = searches[name].predicted()
        at_rate = metrics.precision_at_base_rate(
            searches[name].truth, predicted, BASE_RATES[name], n_resamples=config.n_resamples, seed=config.seed
        )
        results["search"][name]["precision_at_base_rate"] = at_rate["precision"]
        results["search_base_rates"][name] = at_rate
    results["search"]["lens_detectable"] = {
        **{key: results["search"]["lens"][key] for key in ("precision", "recall", "f1")},
        "targets": int(searches["lens"].truth.sum()),
    }
    results["search"]["lens_undetectable"] = undetectable_lenses(data, kbs["lens"], config)
    log("the lens test with the background lines removed")
    results["lens_lines_removed"] = lens_lines_removed(kbs["lens"], config)
    split = {"test": len(mixed), **{f"{name}_targets": int(searches[name].truth.sum()) for name in SEARCH_TASKS}}
    log(f"Figure 5: K from 1 to {config.max_k}")
    results["topk_sweep"] = [
        {"task": name, "k": k, **searches[name].report(config, k=k)}
        for name in SEARCH_TASKS
        for k in range(1, config.max_k + 1)
    ]
    log("Figure 4: share of lenses in the knowledge base")
    results["proportion_sweep"] = proportion_sweep(data, searches["lens"], mixed, config)
    log("Table A1: distances and weight functions")
    results["weight_functions"] = weight_functions(data, searches, config)
    log("Appendix B.2: a LINER case study")
    results["case_study"] = case_study(data, searches["liner"], mixed, config)
    return results, split


def mixed_test_set(reserve: str = TEST) -> list[int]:
    """Spectra of ``reserve`` (the test reserve by default) that any search labelling labels: BPT classes,
    lenses and outliers together."""
    ids = set()
    for labelling in dict.fromkeys(TASKS[name].labelling for name in SEARCH_TASKS):
        ids |= set(task_labels(labelling=labelling, reserve=reserve))
    return sorted(ids)


@dataclass(frozen=True)
class Search:
    """One search task on the mixed test set: its KB's labels, the truth, and max_k neighbours per query."""

    kb: KnowledgeBase
    retriever: Retriever
    truth: np.ndarray  # (n,) bool: the test spectrum carries a target label
    found: vector_index.Neighbours
    detected: np.ndarray | None = None  # (n,) bool: background lines pass the version's rule; None: no rule

    @classmethod
    def of(cls, data: Data, kb: KnowledgeBase, ids: list[int], max_k: int, reserve: str = TEST) -> Search:
        labels = task_labels(labelling=kb.task.labelling, reserve=reserve)
        truth = np.array([i in labels and labels[i].label in kb.task.target_labels for i in ids])
        retriever = load_retriever(kb)
        queries = data.served(kb, ids)
        return cls(kb, retriever, truth, retriever.neighbours(queries, max_k), served_rules(data, kb, ids, queries))

    @property
    def label_of(self) -> dict[int, str]:
        return self.retriever.labels

    @property
    def policy(self) -> VotePolicy:
        """The knowledge base's own vote policy, chosen on the validation reserve at its build."""
        return self.retriever.policy

    def votes(self, k: int | None = None, weight_function: str | None = None, temperature: float | None = None):
        """The votes under the knowledge base's policy, with ``k``, ``weight_function`` or ``temperature``
        changed where given."""
        policy = self.policy.asked(k=k, weighting=weight_function)
        if temperature is not None:
            policy = replace(policy, temperature=temperature)
        return self.retriever.vote_neighbours(self.found, policy)

    def predicted(self, k=None, weight_function=None, temperature=None) -> np.ndarray:
        """(n,) bool: the answer is a target: the vote is a target label, or (where the version has a rule)
        the background lines pass it."""
        votes = self.votes(k, weight_function, temperature)
        voted = np.array([v.label in self.kb.task.target_labels for v in votes])
        return voted if self.detected is None else served_answer(self.kb, voted, self.detected)

    def vote_only(self, config: EvaluationConfig) -> dict:
        """The search's scores from the vote alone, without the background lines."""
        voted = np.array([v.label in self.kb.task.target_labels for v in self.votes()])
        return metrics.search_report(self.truth, voted, n_resamples=config.n_resamples, seed=config.seed)

    def rule_only(self, config: EvaluationConfig) -> dict | None:
        """The search's scores from the rule beside the vote alone (background lines, weirdness): the
        baseline the vote must add to."""
        if self.detected is None:
            return None
        return metrics.search_report(self.truth, self.detected, n_resamples=config.n_resamples, seed=config.seed)

    def report(
        self,
        config: EvaluationConfig,
        *,
        k: int | None = None,
        weight_function: str | None = None,
        temperature: float | None = None,
    ) -> dict:
        predicted = self.predicted(k, weight_function, temperature)
        return metrics.search_report(self.truth, predicted, n_resamples=config.n_resamples, seed=config.seed)


def served_rules(
    data: Data, kb: KnowledgeBase, ids: list[int], queries: np.ndarray, scans: list | None = None
) -> np.ndarray | None:
    """(n,) bool: spectra ``ids`` that the version's rule beside the vote finds (background lines for lenses,
    weirdness for outliers), as its answers do; None where it has no rule. ``served_answer`` joins it to the
    vote. ``queries`` are their vectors as the version votes them, ``scans`` their background-line scans
    (default: those of their stored spectra)."""
    background, weird = BackgroundRule.from_dict(kb.background_rule), kb.weirdness_rule or {}
    if background.threshold is None and weird.get("threshold") is None:
        return None
    found = np.zeros(len(ids), dtype=bool)
    if background.threshold is not None:
        scans = scans or background_lines_get(spectra=[data.spectra[i] for i in ids])
        found |= np.array([background.finds(b, quiet_host(data.spectra[i].lines)) for b, i in zip(scans, ids)])
    if weird.get("threshold") is not None:
        scores = load_retriever(kb).weirdness(queries, frozenset(weird["ordinary"]), weird["k"], own_ids=ids)
        found |= scores >= weird["threshold"]
    return found


def served_answer(kb: KnowledgeBase, voted: np.ndarray, found: np.ndarray | None) -> np.ndarray:
    """(n,) bool: the answers' targets, the vote ``voted`` (n,) joined to what the rule ``found``
    (``served_rules``) as the version joins them (``BackgroundRule.target``; weirdness is always beside the
    vote)."""
    rule = BackgroundRule.from_dict(kb.background_rule)
    if found is None:
        return voted
    return voted | found if rule.threshold is None else rule.target(voted, found)


def shortcut(data: Data, search: Search, ids: list[int], config: EvaluationConfig) -> dict:
    """The search made by the same K-vote over the same knowledge base, on z, velocity dispersion and S/N
    alone (``baselines.shortcut_knn``): what the catalog gives away without the spectrum."""
    entries = sorted(search.label_of)
    voted = shortcut_knn(
        data.features(entries), [search.label_of[i] for i in entries], data.features(ids), policy=config_policy(config)
    )
    predicted = np.array([label in search.kb.task.target_labels for label in voted])
    return metrics.search_report(search.truth, predicted, n_resamples=config.n_resamples, seed=config.seed)


def lens_lines_removed(kb: KnowledgeBase, config: EvaluationConfig) -> dict:
    """Every mock lens rendered again without its background galaxy's lines (same host, same noise) and
    voted in the lens knowledge base with its own entry left out. If the search finds lensing, few are
    voted 'lens'; if it finds the kind of galaxy lenses are, most still are."""
    lenses = Spectrum.objects.filter(catalog_labels__catalog="talbot2021").order_by("pk")
    ids, vectors, retriever = [], [], load_retriever(kb)
    with tempfile.TemporaryDirectory() as folder:
        for spectrum in lenses:
            survey = Path(spectrum.source_file).parents[2]
            if not (survey / SETTINGS).exists():
                continue  # not from a mock survey: it cannot be rendered again
            path = render_again(survey, int(spectrum.specobjid), folder, background=False)
            prepared = read_query(path)
            ids.append(spectrum.pk)
            grid = prepared.grid
            z = prepared.spectrum.z
            vector, _ = query_embedding(knowledge_base=kb, flux=grid.flux, valid=grid.valid, ivar=grid.ivar, z=z)
            policy = retriever.policy
            vectors.append(
                query_vector(policy=policy, embedding=vector, flux=grid.flux, valid=grid.valid, ivar=grid.ivar, z=z)
            )
    if not ids:
        return {"n": 0, "voted_lens": None}
    votes = retriever.votes(np.stack(vectors), own_ids=np.array(ids))
    voted = [v.label == "lens" for v in votes]
    return {"n": len(ids), "voted_lens": float(np.mean(voted)), "in_kb": kb.entries.filter(spectrum_id__in=ids).count()}


def recall_by_kind(outliers: Search, ids: list[int], config: EvaluationConfig) -> dict:
    answered = outliers.predicted()  # as served: the vote, or the weirdness where the version has a rule
    labels = task_labels(labelling="outlier", reserve=TEST)
    by_kind: dict[str, list[bool]] = {}
    for i, hit in zip(ids, answered):
        if i in labels and labels[i].label == "outlier":
            by_kind.setdefault(labels[i].details["kind"], []).append(bool(hit))
    return {
        kind: {
            "recall": float(np.mean(hits)),
            "found": int(sum(hits)),
            "n": len(hits),
            "recall_ci": metrics.proportion_interval(int(sum(hits)), len(hits)),
        }
        for kind, hits in sorted(by_kind.items())
    }


def undetectable_lenses(data: Data, kb: KnowledgeBase, config: EvaluationConfig) -> dict:
    """The lens search's recall on the test reserve's mock lenses that the lens catalog does not list,
    their background lines below its detection rule (``kb.mock.rules.lens_detected``): in the survey,
    unlabelled, as undetected lenses are. A vote of 'lens' for one is a discovery the catalog's figures
    count as a false positive. n 0 where the survey is not a v3 mock (a v2 catalog lists every lens)."""
    ids = [
        i for i, row in mock_truth(TEST).items() if row["population"] == "lens" and row.get("lens_catalogued") == "0"
    ]
    if not ids:
        return {"n": 0, "found": 0, "recall": None, "recall_ci": None}
    queries = data.served(kb, ids)
    voted = np.array([v.label in kb.task.target_labels for v in load_retriever(kb).votes(queries)])
    voted = served_answer(kb, voted, served_rules(data, kb, ids, queries))  # as served: the background lines count
    hits = int(sum(voted))
    return {
        "n": len(ids),
        "found": hits,
        "recall": hits / len(ids),
        "recall_ci": metrics.proportion_interval(hits, len(ids)),
    }


def mock_truth(reserve: str) -> dict[int, dict]:
    """{spectrum id: its row of mock_truth.csv} for the spectra of ``reserve`` that come from a mock survey."""
    rows, tables = {}, {}
    for spectrum in Spectrum.objects.only("pk", "specobjid", "source_file").order_by("pk"):
        if reserve_of(spectrum.specobjid) != reserve:
            continue
        survey = Path(spectrum.source_file).parents[2]
        if survey not in tables:
            tables[survey] = _truth_table(survey / "mock_truth.csv")
        if str(spectrum.specobjid) in tables[survey]:
            rows[spectrum.pk] = tables[survey][str(spectrum.specobjid)]
    return rows


def _truth_table(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    with open(path, newline="") as handle:
        return {row["specobjid"]: row for row in csv.DictReader(handle)}


# The mock lenses' log-uniform range of background-line S/N, cut in three equal steps of log S/N.
SOURCE_SNR_BINS = tuple(map(float, np.geomspace(*SOURCE_SNR, 4).round(1)))


def recall_by_source_snr(lenses: Search, ids: list[int], config: EvaluationConfig) -> list[dict]:
    """The lens search's recall for the mock lenses whose background galaxy's strongest line has an S/N in
    each of SOURCE_SNR_BINS: how faint a lensed galaxy the search still finds. Lenses not from a mock
    survey (no truth to draw again) are left out; empty when none is."""
    answered = lenses.predicted()  # as served: the vote, or the background lines where the version has a rule
    found = {i: bool(hit) for i, hit, target in zip(ids, answered, lenses.truth) if target}
    snr = {}
    for spectrum in Spectrum.objects.filter(pk__in=list(found)).only("pk", "specobjid", "source_file"):
        survey = Path(spectrum.source_file).parents[2]
        if (survey / SETTINGS).exists():
            snr[spectrum.pk] = galaxy_again(survey, int(spectrum.specobjid)).source_snr
    rows = []
    for b, edges in enumerate(zip(SOURCE_SNR_BINS, SOURCE_SNR_BINS[1:])):
        hits = [found[i] for i, value in snr.items() if snr_bin(value) == b]
        recall = float(np.mean(hits)) if hits else None
        rows.append({"source_snr": list(edges), "n": len(hits), "found": int(sum(hits)), "recall": recall})
    return rows if snr else []


def snr_bin(value: float) -> int:
    """The bin of SOURCE_SNR_BINS holding ``value``; each bin holds its lower edge, the last its upper."""
    return int(np.searchsorted(SOURCE_SNR_BINS[1:-1], value, side="right"))


def proportion_sweep(data: Data, lenses: Search, ids: list[int], config: EvaluationConfig) -> list[dict]:
    """The lens share of the KB swept; each KB as large as its share allows from the same pool, voting by
    the lens knowledge base's policy in its metric's space."""
    truth, retriever = lenses.truth, lenses.retriever
    pool = {i: item.label for i, item in task_labels(labelling="lens", reserve=TRAIN).items()}
    queries = data.served(lenses.kb, ids)
    rows = []
    for fraction in config.proportions:
        try:
            chosen = compose(pool, targets=("lens",), size=None, target_fraction=fraction, seed=config.seed)
        except ValueError:
            continue  # too few lenses or others for this share
        labels = [pool[i] for i in chosen]
        votes = knn_vote(
            data.served(lenses.kb, chosen), labels, queries, policy=retriever.policy, metric=retriever.metric
        )
        predicted = np.array([v.label == "lens" for v in votes])
        report = metrics.search_report(truth, predicted, n_resamples=config.n_resamples, seed=config.seed)
        rows.append({"target_fraction": fraction, "size": len(chosen), "lenses": labels.count("lens"), **report})
    return rows


# --- Table A1 -----------------------------------------------------------------------------------------


def weight_functions(data: Data, searches: dict[str, Search], config: EvaluationConfig) -> dict:
    """Table A1 on the LINER knowledge base: distances, the weights each function gives, and P/R/F1."""
    liner = searches["liner"]
    rng = np.random.default_rng(config.seed)
    entry_ids = sorted(liner.label_of)
    sample = sorted(rng.choice(entry_ids, min(config.distance_sample, len(entry_ids)), replace=False).tolist())
    distances = pdist(liner.retriever.metric.transform(data.served(liner.kb, sample)).astype(np.float64))
    result = {
        "pairwise_distances": metrics.distribution_stats(distances),
        "neighbour_distances": metrics.distribution_stats(liner.found.distances[:, : liner.policy.k]),
        "functions": {},
    }
    for function in WEIGHTINGS:
        weights = np.concatenate([v.weights for v in liner.votes(weight_function=function)])
        result["functions"][function] = {
            "weights": metrics.distribution_stats(weights),
            **{name: search.report(config, weight_function=function) for name, search in searches.items()},
        }
    result["fitted_temperature"] = fitted_temperature(data, searches, config)
    result["_histograms"] = {"distances": distances[:: max(1, len(distances) // 20000)].tolist()}
    return result


TEMPERATURES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def fitted_temperature(data: Data, searches: dict[str, Search], config: EvaluationConfig) -> dict:
    """The paper's "learnable weight transformation", at its simplest: for each search, the temperature of
    the softmax over exp(-distance) (``inference.vote``) that gives the best F1 on the validation reserve
    (ties go to the temperature nearest 1, the paper's), then its figures on the test reserve."""
    validation = mixed_test_set(VALIDATION)
    fitted = {}
    for name, search in searches.items():
        checked = Search.of(data, search.kb, validation, config.max_k, reserve=VALIDATION)
        f1 = {t: checked.report(config, temperature=t)["f1"] for t in TEMPERATURES}
        best = max(TEMPERATURES, key=lambda t: (round(f1[t], 6), -abs(np.log(t))))
        fitted[name] = {
            "temperature": best,
            "validation_f1": f1[best],
            "validation_f1_at_1": f1[1.0],
            "test": search.report(config, temperature=best),
        }
    return fitted


# --- Appendix B.2 and the real spectra -------------------------------------------------------------------


def _points(spectrum: Spectrum, name: str, label: str) -> dict:
    ratios = bpt_ratios(spectrum.lines)
    return {
        "x": ratios.get("n2"),
        "y": ratios.get("o3"),
        "name": name,
        "label": label,  # None where a line is missing
        **{f"log_{key}": value for key, value in ratios.items()},
    }


def case_study(data: Data, liner: Search, ids: list[int], config: EvaluationConfig) -> dict | None:
    """A held-out LINER that the LINER search finds: preferably one outvoting a neighbour of another class."""
    votes, found, label_of, k = liner.votes(), liner.found, liner.label_of, liner.policy.k
    hits = [(j, v) for j, v in enumerate(votes) if liner.truth[j] and v.label == "liner"]
    if not hits:
        return None
    mixed = [(j, v) for j, v in hits if len({label_of[int(i)] for i in found.ids[j, :k] if i >= 0}) > 1]
    j, v = max(mixed or hits, key=lambda item: item[1].share)
    query = data.spectra[ids[j]]
    neighbours = []
    for i, d, w in zip(found.ids[j, :k], found.distances[j, :k], v.weights):
        s = data.spectra[int(i)]
        neighbours.append(
            {
                "specobjid": s.specobjid,
                "plate_mjd_fiber": s.plate_mjd_fiber,
                "label": label_of[int(i)],
                "distance": float(d),
                "weight": float(w),
                "z": s.z,
                **_points(s, s.plate_mjd_fiber, label_of[int(i)]),
            }
        )
    return {
        "query": {
            "specobjid": query.specobjid,
            "plate_mjd_fiber": query.plate_mjd_fiber,
            "z": query.z,
            **_points(query, query.plate_mjd_fiber, "query (LINER)"),
        },
        "vote": v.label,
        "share": v.share,
        "neighbours": neighbours,
    }
