"""A batch job's worker killed mid-job, a solo worker and a prefork pool's child alike: the job is taken up
again (a new worker sends it, or the broker gives a lost child's task back) and finishes with every input
answered exactly once, as one uninterrupted worker would have answered it."""

import os
import signal
import time

import pytest

from inference.models import SearchJob, SearchJobResult
from inference.services.jobs import search_job_create
from inference.services.search import search
from kb.models import Spectrum
from tests.conftest import person, shipped_task, start_worker

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = {"GALSPEC_OPERATION_STALE_S": "3", "GALSPEC_TEST_SEARCH_DELAY": "1"}  # each search 1 s more


def _wait(until, workers, deadline):
    while not until():
        for worker in workers:
            assert worker.poll() is None and time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
        time.sleep(0.1)


def _job(n: int):
    spectra = list(Spectrum.objects.filter(held_out=True)[:n])
    job = search_job_create(owner=person("vera"), task=shipped_task("lens"), identifiers=[s.specobjid for s in spectra])
    return job, spectra


def _answered_once_as_one_worker_would(job: SearchJob, spectra) -> None:
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("done", len(spectra), 0), job.error
    assert job.attempts >= 2  # it was taken up again
    positions = list(SearchJobResult.objects.filter(job=job).order_by("position").values_list("position", flat=True))
    assert positions == list(range(len(spectra)))
    labels = list(SearchJobResult.objects.filter(job=job).order_by("position").values_list("label", flat=True))
    assert labels == [search(task="lens", spectrum=s).label for s in spectra]


def _stop(*workers):
    for worker in workers:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=30)


def test_a_solo_worker_killed_mid_job_another_finishes_it(searchable, data_dir, settings):
    from galspec_site.celery import app

    app.control.purge() if settings.REDIS_URL else None
    first = start_worker(data_dir, settings, module="tests.slow_worker", **SLOW)
    second = None
    deadline = time.monotonic() + 240
    try:
        job, spectra = _job(6)
        _wait(lambda: SearchJob.objects.get(pk=job.pk).done >= 2, [first], deadline)
        first.send_signal(signal.SIGKILL)  # between answers or in the middle of one
        first.wait()
        assert SearchJob.objects.get(pk=job.pk).status == "running"
        second = start_worker(data_dir, settings, module="tests.slow_worker", **SLOW)  # sends left jobs again
        _wait(lambda: SearchJob.objects.get(pk=job.pk).finished, [second], deadline)
    finally:
        _stop(first, second)
    _answered_once_as_one_worker_would(job, spectra)


def test_a_prefork_child_killed_mid_job_the_pool_finishes_it(searchable, data_dir, settings):
    from galspec_site.celery import app

    app.control.purge() if settings.REDIS_URL else None
    worker = start_worker(
        data_dir, settings, module="tests.slow_worker", pool=("--pool=prefork", "--concurrency=1"), **SLOW
    )
    deadline = time.monotonic() + 240
    try:
        job, spectra = _job(6)
        _wait(lambda: SearchJob.objects.get(pk=job.pk).done >= 2, [worker], deadline)
        (child,) = open(f"/proc/{worker.pid}/task/{worker.pid}/children").read().split()
        os.kill(int(child), signal.SIGKILL)  # the pool's child, not the worker
        _wait(lambda: SearchJob.objects.get(pk=job.pk).finished, [worker], deadline)
    finally:
        _stop(worker)
    _answered_once_as_one_worker_would(job, spectra)
