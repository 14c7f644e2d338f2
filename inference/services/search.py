"""Answering a search: a query spectrum, a task's knowledge base in service, the vote and its evidence.

A query is an ingested spectrum (its stored embedding is used when there is one) or a spectrum file
read and preprocessed as at ingest. The answer names everything needed to explain it later: each
neighbour with its label, distance, weight and the catalogs the label came from, the knowledge-base
version and the checkpoint.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.utils.text import get_valid_filename

from inference.answers import Answer, Context, Neighbour, Query
from inference.background_lines import LINES, QUIET, BackgroundRule, background_scan, quiet_host
from inference.embed import embed, reconstruction_chi2
from inference.models import EmbeddingSet
from inference.representation import needs_ivar, represent
from inference.retriever import NO_ID, POLICY_FILE, WEIRD_K, Retriever, VotePolicy
from inference.selectors.embeddings import embedding_reconstruction, embedding_vectors, line_continuum
from inference.selectors.evidence import spectrum_query
from inference.selectors.lines import background_lines_get
from inference.trust import assess
from kb.bpt import bpt_class_from_lines
from kb.labellings import CATALOG, LABELLINGS, own_lines_label
from kb.models import KBEntry, KnowledgeBase, SearchTask, Spectrum
from kb.preprocess import PAPER, PreparedFile, prepare_file, wave_grid
from kb.selectors import (
    knowledge_base_entries,
    knowledge_base_in_service,
    search_task_get,
    spectrum_lookup,
    spectrum_store,
)
from kb.spectra import lines_as_dict
from training.checkpoint import load_masked_model

logger = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _model(folder: str, device: str):
    return load_masked_model(folder, device=device)


@lru_cache(maxsize=16)
def _retriever(folder: str, stamp: float, knowledge_base: int) -> tuple[Retriever, dict]:
    """A loaded retriever; ``stamp`` (the sidecar's mtime) makes a rebuilt folder load afresh. A folder from
    before retrievers were saved takes its labels from the database (a built version never changes)."""
    labels = None
    if not (Path(folder) / POLICY_FILE).exists():
        labels = dict(KBEntry.objects.filter(knowledge_base_id=knowledge_base).values_list("spectrum_id", "label"))
    return Retriever.load(folder, labels)


def load_retriever(knowledge_base: KnowledgeBase) -> Retriever:
    """The knowledge base's loaded retriever: its index, labels, metric and policy. Its ValueError says what
    is wrong and who can mend it, never where on the server the files are: that goes to the log, for whoever
    runs the server."""
    folder = Path(knowledge_base.index_path)
    if not (folder / "index.json").exists():
        logger.error("%s: no index at %s", knowledge_base, folder)
        raise ValueError(f"{knowledge_base}: its index files are missing; an administrator rebuilds it (Operations)")
    retriever, sidecar = _retriever(str(folder), (folder / "index.json").stat().st_mtime, knowledge_base.pk)
    if sidecar.get("knowledge_base") != knowledge_base.pk:
        logger.error("%s holds knowledge base %s, not %s", folder, sidecar.get("knowledge_base"), knowledge_base.pk)
        raise ValueError(f"{knowledge_base}: its index folder holds another version; an administrator rebuilds it")
    return retriever


def query_embedding(
    *, knowledge_base: KnowledgeBase, spectrum: Spectrum | None = None, flux=None, valid=None, ivar=None, z=None
) -> tuple[np.ndarray, float]:
    """The query under the knowledge base's checkpoint: its (E,) embedding and its reconstruction chi-squared
    (``inference.embed.reconstruction_chi2``; NaN if none of the probed pixels is valid). The
    query is an ingested ``spectrum`` (read from the embedding set where it is embedded), or ``flux``,
    ``valid`` and ``ivar`` (L,) on the model's grid with the redshift ``z``."""
    run = knowledge_base.training_run
    if spectrum is not None:
        rows = [spectrum.store_row]
        if EmbeddingSet.objects.filter(training_run=run, rows__gt=spectrum.store_row).exists():
            vector = embedding_vectors(training_run=run, store_rows=rows)[0]
            return vector, float(embedding_reconstruction(training_run=run, store_rows=rows)[0])
        store = spectrum_store()
        (flux_all, valid_all), ivar_all = store.read(), store.read_ivar()
        flux, valid, ivar, z = flux_all[rows], valid_all[rows], ivar_all[rows], spectrum.z
    elif any(value is None for value in (flux, valid, ivar, z)):
        raise ValueError("a query is an ingested spectrum, or its flux, valid, ivar and z together")
    model = _model(str(run.checkpoint_path), settings.GALSPEC_DEVICE)
    flux, valid, ivar = (np.asarray(a).reshape(1, -1) for a in (flux, valid, ivar))
    return embed(model.encoder, flux, valid, [z])[0], float(reconstruction_chi2(model, flux, valid, ivar)[0])


def query_vector(
    *,
    policy: VotePolicy,
    embedding: np.ndarray,
    spectrum: Spectrum | None = None,
    flux=None,
    valid=None,
    ivar=None,
    z=None,
) -> np.ndarray:
    """(D,) the query in the representation ``policy`` votes in (``inference.representation``), from its (E,)
    ``embedding`` and the flux of the ingested ``spectrum`` or ``flux``, ``valid`` and ``ivar`` (L,) at
    redshift ``z``."""
    if spectrum is not None:
        store = spectrum_store()
        (flux_all, valid_all), ivar_all = store.read(), store.read_ivar()
        flux, valid, ivar, z = (
            flux_all[spectrum.store_row],
            valid_all[spectrum.store_row],
            ivar_all[spectrum.store_row],
            spectrum.z,
        )
    arrays = (np.asarray(a)[None] if a is not None else None for a in (embedding, flux, valid))
    z = None if z is None else [z]
    ivar = None if ivar is None else np.asarray(ivar)[None]
    eigen = line_continuum() if needs_ivar(policy.representation) else None
    return represent(policy.representation, *arrays, z, ivar, window_scale=policy.window_scale, eigen=eigen)[0]


def read_query(path: str | Path, *, name: str | None = None) -> PreparedFile:
    """A spectrum file read and preprocessed as at ingest; ValueError naming the file (or ``name``,
    the name a user gave an upload) and what is wrong with it."""
    prepared = prepare_file(Path(path))
    if prepared.error:
        raise ValueError(f"{name or Path(path).name}: {prepared.error}")
    return prepared


def search(
    *,
    task: SearchTask | str,
    spectrum: Spectrum | None = None,
    path: str | Path | None = None,
    prepared: PreparedFile | None = None,
    k: int | None = None,
    weight_function: str | None = None,
    knowledge_base: KnowledgeBase | None = None,
) -> Answer:
    """The vote of the task's knowledge base (default: the one in service) for an ingested ``spectrum``, a
    spectrum file at ``path``, or a file already ``prepared`` by ``read_query``: under the version's own
    policy, with the ``k`` and ``weight_function`` asked for where given (``VotePolicy.asked``).

    A spectrum that is itself in the knowledge base is not counted among its own neighbours.
    """
    if sum(query is not None for query in (spectrum, path, prepared)) != 1:
        raise ValueError("search one spectrum: give either an ingested spectrum or a file")
    task = search_task_get(name=task) if isinstance(task, str) else task
    kb = _searchable(task, knowledge_base)
    retriever = load_retriever(kb)
    policy = retriever.policy.asked(k=k, weighting=weight_function)
    if path is not None:
        prepared = read_query(path)
    if prepared is not None:
        query = prepared.path.name
        grid, z = prepared.grid, prepared.spectrum.z
        pixels = (grid.flux, grid.ivar)
        vector, chi2 = query_embedding(knowledge_base=kb, flux=grid.flux, valid=grid.valid, ivar=grid.ivar, z=z)
        vector = query_vector(policy=policy, embedding=vector, flux=grid.flux, valid=grid.valid, ivar=grid.ivar, z=z)
        own, valid_fraction, mock = NO_ID, float(grid.valid.mean()), prepared.spectrum.mock
        about = (lines_as_dict(prepared.spectrum.lines), prepared.spectrum.sdss_class, prepared.spectrum.subclass)
    else:
        query = f"specobjid {spectrum.specobjid}"
        vector, chi2 = query_embedding(knowledge_base=kb, spectrum=spectrum)
        vector = query_vector(policy=policy, embedding=vector, spectrum=spectrum)
        pixels = None
        own, z, valid_fraction, mock = spectrum.pk, spectrum.z, spectrum.valid_fraction, spectrum.mock
        about = (spectrum.lines, spectrum.sdss_class, spectrum.subclass)
    found = retriever.neighbours(vector[None], policy.k, own_ids=[own])
    (result,) = retriever.vote_neighbours(found, policy)
    ids, distances = found.ids[0], found.distances[0]
    present = [int(i) for i in ids if i >= 0]
    nearest = float(distances[0]) if present else None
    entries = {e.spectrum_id: e for e in knowledge_base_entries(knowledge_base=kb).filter(spectrum_id__in=present)}
    targets = tuple(task.target_labels)
    background = _background(task, kb, spectrum, pixels, z, about[0])
    weirdness = _weirdness(task, kb, retriever, vector, own)
    context = _context(task, kb, policy, result.label, [entries[i].label for i in present], *about)
    if background is not None:
        context.disagreements.extend(_background_doubts(background, result.label, result.label in targets))
    if weirdness is not None and weirdness["flagged"] and result.label not in targets:
        context.disagreements.append(
            f"it lies far from every ordinary galaxy of the knowledge base (weirdness {weirdness['score']:.3g}, past "
            f"the {weirdness['threshold']:.3g} that flags {weirdness['false_positive_rate']:.1%} of ordinary "
            f"validation spectra), though its neighbours voted {result.label}"
        )
    return Answer(
        task=task.name,
        label=result.label,
        share=result.share,
        shares=result.shares,
        is_target=_is_target(result.label in targets, background, weirdness) if targets else None,
        neighbours=[_neighbour(entries[i], d, w) for i, d, w in zip(present, distances, result.weights)],
        knowledge_base=kb.pk,
        kb_version=kb.version,
        checkpoint=kb.training_run.checkpoint_name,
        training_run=kb.training_run_id,
        k=policy.k,
        weight_function=policy.weighting,
        policy=policy.as_dict(),
        query=query,
        mock=mock,
        trust=assess(
            kb.calibration, valid_fraction=valid_fraction, z=z, nearest_distance=nearest, reconstruction_chi2=chi2
        ),
        context=context,
        background=background,
        weirdness=weirdness,
    )


def _weirdness(task: SearchTask, kb: KnowledgeBase, retriever: Retriever, vector: np.ndarray, own: int) -> dict | None:
    """For a task whose targets are the unusual: how far the query lies from the version's ordinary entries
    (``Retriever.weirdness``) and whether that passes its rule (``KnowledgeBase.weirdness_rule``); None for
    any other task."""
    labelling = LABELLINGS.get(task.labelling)
    if labelling is None or not labelling.weirdness:
        return None
    rule = kb.weirdness_rule or {}
    ordinary = rule.get("ordinary") or [label for label in labelling.labels if label not in task.target_labels]
    score = float(retriever.weirdness(vector[None], frozenset(ordinary), rule.get("k", WEIRD_K), own_ids=[own])[0])
    threshold = rule.get("threshold")
    return {
        "score": score if np.isfinite(score) else None,
        "k": rule.get("k", WEIRD_K),
        "threshold": threshold,
        "false_positive_rate": rule.get("false_positive_rate"),
        "flagged": threshold is not None and score >= threshold,
    }


def _is_target(voted: bool, background: dict | None, weirdness: dict | None) -> bool:
    """Whether an answer is a target: its vote, joined to its background lines as the version's rule says
    (``BackgroundRule.target``), or its weirdness past the threshold."""
    if background is not None:
        voted = BackgroundRule.from_dict(background).target(voted, background["detected"])
    return bool(voted or (weirdness and weirdness["flagged"]))


def _background(
    task: SearchTask, kb: KnowledgeBase, spectrum: Spectrum | None, pixels, z: float, lines: dict | None
) -> dict | None:
    """For a task whose targets show a second galaxy's lines: the query's background-line scan, whether its
    host is quiet (``quiet_host``, from its own ``lines``) and whether it passes the version's rule
    (``KnowledgeBase.background_rule``); None for any other task. ``pixels`` is (flux, ivar) on the grid
    for a file, None for an ingested ``spectrum`` (read from the store)."""
    labelling = LABELLINGS.get(task.labelling)
    if labelling is None or not labelling.background_lines:
        return None
    if pixels is None:
        (found,) = background_lines_get(spectra=[spectrum])
    else:
        found = background_scan(wave_grid(PAPER), *pixels, z)
    rule, quiet = BackgroundRule.from_dict(kb.background_rule), quiet_host(lines)
    return {**found.as_dict(), "quiet_host": quiet, "detected": rule.finds(found, quiet), **asdict(rule)}


def _background_doubts(background: dict, label: str, voted_target: bool) -> list[str]:
    """Sentences where the background lines and the vote part."""
    if background["detected"] and not voted_target:
        lines = ", ".join(f"{name} S/N {snr:.1f}" for name, snr in background["lines"].items() if snr >= 3)
        return [
            f"background emission lines at z = {background['z_source']:.4f} (combined S/N {background['snr']:.1f}; "
            f"{lines}) make it a target, though its neighbours voted {label}"
        ]
    if voted_target and background["threshold"] is not None and not background["detected"]:
        verdict = ", so it is not a target" if background["combine"] == LINES else ""
        if background["hosts"] == QUIET and not background["quiet_host"]:
            return [
                f"its own emission lines place it on the BPT diagram, and this knowledge base looks for background "
                f"lines only behind galaxies without lines of their own{verdict}, though its neighbours voted {label}"
            ]
        return [
            f"no background emission lines pass the rule: the best candidate, at z = {background['z_source']}, has "
            f"combined S/N {background['snr']:.1f}, under the {background['threshold']:g} chosen on validation"
            f"{verdict}, though its neighbours voted {label}"
        ]
    return []


def _context(
    task: SearchTask, kb: KnowledgeBase, policy: VotePolicy, label: str, voted: list[str], lines, sdss_class, subclass
) -> Context:
    """Beside the vote for ``label`` (by neighbours labelled ``voted``, under ``policy``): the query's BPT class
    from its own ``lines``, its SDSS class, where either contradicts the vote, and how often such votes were
    right: quoted only where they were measured under this very policy."""
    own = bpt_class_from_lines(lines) if lines else None
    disagreements = []
    expected = own_lines_label(task.labelling, lines) if lines else None  # the labelling's own-lines check
    if expected is not None and expected != label:
        disagreements.append(f"its own emission lines make it {expected} by the BPT diagram, not {label}")
    if sdss_class and sdss_class.upper() != "GALAXY":
        disagreements.append(f"the SDSS pipeline classifies it as a {sdss_class}; the knowledge base holds galaxies")
    scores, scored_on = kb.evaluation, "the test reserve"
    if task.labelling == CATALOG:
        scores, scored_on = kb.evaluation.get("cross_validation", {}), "cross-validation on the catalog's examples"
    elif not task.target_labels:
        scores = kb.evaluation.get("per_class", {}).get(label, {})
    precision, recall = scores.get("precision"), scores.get("recall")
    measured = kb.evaluation.get("cross_validation" if task.labelling == CATALOG else "policy")
    measured = VotePolicy.from_dict(measured.get("policy") if task.labelling == CATALOG and measured else measured)
    if precision is None or measured != policy:
        precision = recall = None
    return Context(
        voters=sum(other == label for other in voted),
        own_lines=own,
        sdss_class=" ".join(part for part in (sdss_class, subclass) if part),
        precision=precision,
        recall=recall,
        scored_on=scored_on if precision is not None else "",
        scored_with=measured.describe() if precision is not None else "",
        unscored_because=_unscored(kb, measured, policy) if precision is None else "",
        disagreements=disagreements,
    )


def _unscored(kb: KnowledgeBase, measured: VotePolicy, policy: VotePolicy) -> str:
    """Why an answer quotes no precision: the version was never scored, or scored under another policy."""
    if not kb.evaluation:
        return f"{kb} was never scored: nothing was held out to score it on"
    return f"its figures were measured at {measured.describe()}, not at {policy.describe()}"


def _searchable(task: SearchTask, knowledge_base: KnowledgeBase | None) -> KnowledgeBase:
    """The version that answers: ``knowledge_base`` if given (the task's own, and ready), else the one in service."""
    kb = knowledge_base or knowledge_base_in_service(task=task)
    if kb.task_id != task.pk:
        raise ValueError(f"knowledge base {kb.pk} is not a version of task {task.name}")
    if kb.status != KnowledgeBase.Status.READY:
        raise ValueError(f"{kb} is not ready to search")
    return kb


def _neighbour(entry, distance: float, weight: float) -> Neighbour:
    """A knowledge-base entry as a neighbour of the query, with its L2 distance and its weight in the vote."""
    spectrum = entry.spectrum
    return Neighbour(
        spectrum_id=entry.spectrum_id,
        specobjid=spectrum.specobjid,
        plate_mjd_fiber=spectrum.plate_mjd_fiber,
        z=spectrum.z,
        label=entry.label,
        distance=float(distance),
        weight=float(weight),
        catalogs=list(entry.catalogs),
        details=dict(entry.details),
        mock=spectrum.mock,
    )


def search_query(
    *,
    task: SearchTask | str,
    identifier: str = "",
    ra: float | None = None,
    dec: float | None = None,
    radius_arcsec: float = 3.0,
    upload: BinaryIO | None = None,
    upload_name: str = "",
    k: int | None = None,
    weight_function: str | None = None,
    knowledge_base: KnowledgeBase | None = None,
) -> tuple[Answer, Query]:
    """One search as a person asks it: an uploaded spectrum file, or an ingested spectrum by specobjid,
    PLATE-MJD-FIBER or position. ValueError with a message for that person; nothing is kept of an upload."""
    if upload is None:
        spectrum = spectrum_lookup(identifier=identifier, ra=ra, dec=dec, radius_arcsec=radius_arcsec)
        answer = search(
            task=task, spectrum=spectrum, k=k, weight_function=weight_function, knowledge_base=knowledge_base
        )
        return answer, spectrum_query(spectrum)
    if identifier or ra is not None or dec is not None:
        raise ValueError("give either a spectrum file or an identifier or position, not both")
    name = upload_name_safe(upload_name or "upload.fits")
    size = getattr(upload, "size", None)
    if size is not None and size > settings.GALSPEC_MAX_UPLOAD_BYTES:
        raise ValueError(f"{name}: {size:,} bytes, over the limit of {settings.GALSPEC_MAX_UPLOAD_BYTES:,} bytes")
    uploads = settings.DATA_DIR / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=uploads) as folder:
        path = Path(folder) / name
        with open(path, "wb") as out:
            shutil.copyfileobj(upload, out)
        prepared = read_query(path)
        answer = search(
            task=task, prepared=prepared, k=k, weight_function=weight_function, knowledge_base=knowledge_base
        )
    query = Query(
        name=name,
        z=prepared.spectrum.z,
        flux=prepared.grid.flux,
        valid=prepared.grid.valid,
        lines=lines_as_dict(prepared.spectrum.lines),
        spectrum=None,
    )
    return answer, query


def upload_name_safe(name: str) -> str:
    """A safe file name for an upload: its last path component, with no character a path or shell could misread."""
    try:
        return get_valid_filename(Path(name.replace("\\", "/")).name)[:120]
    except SuspiciousFileOperation:  # '..', '.', or nothing left
        return "upload.fits"
