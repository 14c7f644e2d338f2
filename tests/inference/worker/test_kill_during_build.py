"""A worker SIGKILLed halfway through writing a candidate's index leaves the system consistent.

The kill is aimed, not timed: the first worker runs ``tests.gated_worker``, whose ``faiss.write_index``
blocks once the index file is written into the ``.tmp`` folder of ``kb.store.folder_write`` (before the
sidecar and the rename), and says so by touching a gate file.
"""

import signal
import time
from pathlib import Path

import pytest

from inference import index as vector_index
from inference.models import Operation
from inference.selectors.store_check import store_check
from inference.services.operations import operation_promote, operation_start
from inference.services.search import search
from kb.models import KnowledgeBase, Spectrum
from kb.services.knowledge_bases import knowledge_base_promote
from tests.conftest import person, shipped_task, start_worker


def _findings() -> list[tuple[str, str]]:
    return [(finding.level, finding.what) for finding in store_check()]


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_while_writing_an_index(searchable, data_dir, settings):
    """While the worker is dead and after, searches are answered from the versions in service; the
    half-built candidate is never ready, never read, and check_store calls its folder a leftover; a new
    worker fails it, builds it again, and its candidate serves once promoted."""
    admin = person("grace", "admin")
    old = {name: (kb.pk, kb.version) for name, kb in searchable.items()}
    probes = list(Spectrum.objects.filter(held_out=True)[:3])
    answers = []

    def searches():
        return [
            (answer.knowledge_base, answer.kb_version)
            for answer in (search(task=name, spectrum=probe) for name in old for probe in probes)
        ]

    gate = data_dir / "gate"
    environment = {"GALSPEC_OPERATION_STALE_S": "2"}
    first = start_worker(data_dir, settings, module="tests.gated_worker", GALSPEC_TEST_GATE=str(gate), **environment)
    try:
        operation = operation_start(user=admin, kind="rebuild", task=shipped_task("lens"))  # sent once committed
        deadline = time.monotonic() + 120
        while not gate.exists():
            assert first.poll() is None and time.monotonic() < deadline, first.log_path.read_text()[-3000:]
            answers += searches()
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    # The worker is dead in the middle of inference.index.save: the index file is in the .tmp folder,
    # its sidecar is not, and the version's own folder was never made.
    (half_built,) = Operation.objects.get(pk=operation.pk).candidates.all()
    folder = data_dir / "indexes" / "lens" / f"v{half_built.version}"
    tmp = folder.with_name(folder.name + ".tmp")
    assert Path(gate.read_text()) == tmp / "index.faiss"
    assert sorted(path.name for path in tmp.iterdir()) == ["index.faiss"] and not folder.exists()
    assert half_built.status == KnowledgeBase.Status.BUILDING and not half_built.in_service
    assert half_built.index_path == ""  # no reader is pointed at any folder of it
    with pytest.raises(ValueError, match="not ready to search"):
        search(task="lens", spectrum=probes[0], knowledge_base=half_built)
    with pytest.raises(ValueError, match="not ready"):
        knowledge_base_promote(knowledge_base=half_built)
    answers += searches()
    assert _findings() == [("warning", f"{tmp}: left by an index write that stopped midway; never read")]
    assert Operation.objects.get(pk=operation.pk).status == Operation.Status.RUNNING

    second = start_worker(data_dir, settings, **environment)
    try:
        while Operation.objects.get(pk=operation.pk).status in (Operation.Status.QUEUED, Operation.Status.RUNNING):
            assert second.poll() is None and time.monotonic() < deadline, second.log_path.read_text()[-3000:]
            answers += searches()
    finally:
        second.terminate()
        second.wait(timeout=30)
    operation.refresh_from_db()
    assert operation.status == Operation.Status.DONE, operation.error
    assert operation.attempts == 2
    half_built.refresh_from_db()
    assert half_built.status == KnowledgeBase.Status.FAILED and "its worker stopped" in half_built.error
    (rebuilt,) = operation.candidates.filter(status=KnowledgeBase.Status.READY)
    assert rebuilt.version == half_built.version + 1 and not rebuilt.in_service
    index, sidecar = vector_index.load(rebuilt.index_path)
    assert sidecar["knowledge_base"] == rebuilt.pk and sidecar["kb_version"] == rebuilt.version
    entries = set(rebuilt.entries.values_list("spectrum_id", flat=True))
    ids = vector_index.index_ids(index).tolist()
    assert len(ids) == len(entries) == rebuilt.size and set(ids) == entries
    answers += searches()
    assert set(answers) == set(old.values()) and len(answers) > 2 * len(old) * len(probes)
    assert not tmp.exists() and _findings() == []  # the half-written index went with its failed candidate

    operation_promote(user=admin, operation=operation)
    assert set(searches()) == {(rebuilt.pk, rebuilt.version), old["bpt3"]}
    assert _findings() == []
