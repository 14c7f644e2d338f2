import json
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from inference.embed import embed, reconstruction_chi2
from inference.models import EmbeddingSet
from inference.selectors.embeddings import embedding_reconstruction, embedding_store, reconstruction_store
from inference.services.embeddings import embedding_update
from kb.mock import generate_survey
from kb.models import Spectrum
from kb.selectors import spectrum_redshifts, spectrum_store
from kb.services.ingest import ingest_folder
from training.checkpoint import load_checkpoint, load_masked_model
from training.models import TrainingRun
from training.services import training_run_create, training_run_execute, training_run_promote

pytestmark = pytest.mark.django_db
QUICK = dict(max_steps=4, eval_every=2, batch_size=8, warmup_steps=1)


@pytest.fixture
def ingested(data_dir, tmp_path):
    generate_survey(out=tmp_path / "survey", size=40, seed=2)
    ingest_folder(folder=tmp_path / "survey")


def test_a_run_trains_records_its_metrics_and_goes_into_service(ingested):
    run = training_run_execute(run=training_run_create(preset="small", **QUICK))
    run.refresh_from_db()
    assert run.status == "succeeded" and run.in_service
    training = Spectrum.objects.filter(held_out=False, validation=False)
    assert run.n_spectra == training.count() == run.metrics["n_train"] < 40  # both reserves are left out
    assert run.metrics["n_val"] == Spectrum.objects.filter(validation=True).count() > 0  # chosen on validation
    assert run.step == 4 and run.train_config["lr"] == 2e-3  # the small preset's default learning rate
    assert run.metrics["val_interp_mse"] > 0 and run.metrics["val_masked_mse"] > 0
    assert run.model_config["d_model"] == 64


def test_a_worker_configured_for_two_processes_trains_over_both(ingested, settings):
    settings.GALSPEC_TRAIN_PROCESSES = 2
    steps = []
    run = training_run_create(preset="small", **QUICK)
    run = training_run_execute(run=run, on_progress=lambda step, total, report: steps.append(step))
    run.refresh_from_db()
    assert run.status == "succeeded" and run.in_service and run.metrics["processes"] == 2
    assert steps == [1, 2, 3, 4] and run.step == 4
    assert run.metrics["n_train"] == Spectrum.objects.filter(held_out=False, validation=False).count()
    assert load_masked_model(Path(run.checkpoint_dir) / "best")  # a checkpoint like any other


@pytest.mark.django_db(transaction=True)  # the joining machine reads the run on its own connection
def test_a_run_over_two_machines_node_0_launching_and_another_joining(ingested, settings):
    import socket
    import threading

    with socket.socket() as probe:  # a free port for node 0's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.GALSPEC_TRAIN_NODES, settings.GALSPEC_TRAIN_MASTER = 2, f"127.0.0.1:{port}"
    run = training_run_create(preset="small", **QUICK)
    with pytest.raises(CommandError, match="node 2 of 2: give 1 or more nodes, ranks 0 to 1"):
        call_command("pretrain_join", run=run.pk, node_rank=2)
    joined = []
    machine = threading.Thread(
        target=lambda: joined.append(call_command("pretrain_join", run=run.pk, node_rank=1, verbosity=0))
    )
    machine.start()  # waits for node 0 to launch the run
    steps = []
    run = training_run_execute(run=run, on_progress=lambda step, total, report: steps.append(step))
    machine.join(timeout=120)
    assert joined == [None] and steps == [1, 2, 3, 4]
    assert run.status == "succeeded" and run.metrics["processes"] == 2  # one process on each machine
    assert load_masked_model(Path(run.checkpoint_dir) / "best")
    with pytest.raises(CommandError, match="has succeeded: there is nothing to join"):
        call_command("pretrain_join", run=run.pk, node_rank=1)
    settings.GALSPEC_TRAIN_MASTER = ""
    with pytest.raises(CommandError, match=r"2 nodes need node 0's address as host:port \(GALSPEC_TRAIN_MASTER\)"):
        call_command("pretrain_join", run=run.pk, node_rank=1)


def test_only_one_checkpoint_is_in_service(ingested):
    first = training_run_execute(run=training_run_create(preset="small", **QUICK))
    second = training_run_execute(run=training_run_create(preset="small", **QUICK), promote=False)
    assert TrainingRun.objects.get(in_service=True) == first
    training_run_promote(run=second)
    assert list(TrainingRun.objects.filter(in_service=True)) == [second]


def test_bad_options_are_refused_before_anything_runs(ingested):
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        training_run_create(preset="huge")
    with pytest.raises(ValueError, match="unknown training options: learning_rate"):
        training_run_create(preset="small", learning_rate=1.0)
    assert not TrainingRun.objects.exists()


def test_embedding_covers_every_spectrum_and_resumes(ingested):
    run = training_run_execute(run=training_run_create(preset="small", **QUICK))
    embedding_set = embedding_update()
    assert embedding_set.rows == 40 and embedding_set.width == 7 * 64  # 6 line windows and the peaks, D = 64
    flux, valid = spectrum_store().read()
    z = [Spectrum.objects.get(store_row=row).z for row in range(40)]  # each row embedded at its own spectrum's z
    expected = embed(load_checkpoint(f"{run.checkpoint_dir}/best"), flux, valid, z)
    vectors = embedding_store(embedding_set).read()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    chi2 = reconstruction_chi2(
        load_masked_model(f"{run.checkpoint_dir}/best"), flux, valid, spectrum_store().read_ivar()
    )
    np.testing.assert_allclose(reconstruction_store(embedding_set).read()[:, 0], chi2, rtol=1e-5)
    # an interrupted embedding: only 10 rows committed; the update finishes the rest
    EmbeddingSet.objects.filter(pk=embedding_set.pk).update(rows=10)
    assert embedding_update().rows == 40
    np.testing.assert_allclose(embedding_store(embedding_set).read(), expected, atol=1e-5)
    # embeddings of another width (made before the pooling changed): all embedded again
    EmbeddingSet.objects.filter(pk=embedding_set.pk).update(width=64)
    again = embedding_update()
    assert (again.rows, again.width) == (40, 7 * 64)
    np.testing.assert_allclose(embedding_store(again).read(), expected, atol=1e-5)
    # a set from before reconstructions were kept: searches see them as unknown until the update measures
    # them, keeping the embeddings
    for name in ("reconstruction.bin", "reconstruction.json"):
        (Path(again.path) / name).unlink()
    assert np.isnan(embedding_reconstruction(training_run=run, store_rows=[3, 39])).all()
    assert embedding_update().rows == 40
    np.testing.assert_allclose(reconstruction_store(again).read()[:, 0], chi2, rtol=1e-5)
    np.testing.assert_allclose(embedding_store(again).read(), expected, atol=1e-5)
    # the redshift of each store row, NaN past the last spectrum
    z_rows = spectrum_redshifts(38, 42)
    assert z_rows[:2].tolist() == pytest.approx(z[38:]) and np.isnan(z_rows[2:]).all()


def test_embedding_without_a_checkpoint_says_what_to_do(ingested):
    with pytest.raises(ValueError, match="pre-train the encoder first"):
        embedding_update()


def test_pretrain_command_writes_metrics_where_asked(ingested, tmp_path, capsys):
    call_command("pretrain", preset="small", out=str(tmp_path / "run"), max_steps=2, verbosity=0)
    assert (tmp_path / "run" / "metrics.json").exists() and (tmp_path / "run" / "best" / "model.safetensors").exists()
    assert "linear interpolation" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_an_embedder_waits_while_another_process_embeds_for_the_same_checkpoint(ingested, settings):
    """Two embedders of one checkpoint (a survey search and an operation, say) would write the same store."""
    import subprocess
    import sys
    import threading

    run = training_run_execute(run=training_run_create(preset="small", **QUICK))
    lock = settings.DATA_DIR / "embeddings" / f"run-{run.pk}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, sys, time; handle = open(sys.argv[1], 'a'); fcntl.lockf(handle, fcntl.LOCK_EX); "
                "print('held', flush=True); time.sleep(600)"
            ),
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = []
        waiter = threading.Thread(target=lambda: result.append(embedding_update(training_run=run).rows))
        waiter.start()
        waiter.join(timeout=3)
        assert waiter.is_alive() and not EmbeddingSet.objects.filter(training_run=run).exists()
    finally:
        holder.kill()
        holder.wait()
    waiter.join(timeout=120)
    assert result == [40]


def test_a_checkpoint_trained_elsewhere_is_imported_and_embeds_as_it_did_there(ingested, tmp_path, capsys):
    elsewhere = training_run_execute(
        run=training_run_create(preset="small", out_dir=tmp_path / "elsewhere", **QUICK), promote=False
    )
    call_command("import_checkpoint", str(tmp_path / "elsewhere"))
    assert "in service" in capsys.readouterr().out
    run = TrainingRun.objects.get(in_service=True)
    assert run != elsewhere and run.status == "succeeded" and run.preset == "small" and run.step == 4
    from kb.models import AuditEvent  # the switch of encoder, made on the server's command line, is audited

    event = AuditEvent.objects.filter(action="checkpoint_promoted").latest("id")
    assert (event.subject, event.actor, event.after["checkpoint"]) == (
        f"training run {run.pk}",
        None,
        run.checkpoint_name,
    )
    assert Path(run.checkpoint_dir).parent == Path(settings.DATA_DIR) / "checkpoints"
    assert run.metrics["val_masked_chi2"] == elsewhere.metrics["val_masked_chi2"]
    assert run.n_spectra == elsewhere.n_spectra and run.train_config == elsewhere.train_config
    flux, valid = (a[:5] for a in spectrum_store().read())
    z = spectrum_redshifts(0, 5)
    np.testing.assert_array_equal(
        embed(load_checkpoint(run.checkpoint_path), flux, valid, z),
        embed(load_checkpoint(elsewhere.checkpoint_path), flux, valid, z),
    )


def test_a_folder_that_is_not_a_checkpoint_or_was_prepared_otherwise_is_refused_and_nothing_written(ingested, tmp_path):
    from training.services import training_run_import

    with pytest.raises(ValueError, match="is not a GalSpec checkpoint"):
        training_run_import(source=tmp_path)
    training_run_execute(run=training_run_create(preset="small", out_dir=tmp_path / "other", **QUICK), promote=False)
    config = tmp_path / "other" / "best" / "config.json"
    info = json.loads(config.read_text())
    config.write_text(json.dumps({**info, "preprocess": {**info["preprocess"], "n_pixels": 4000}}))
    with pytest.raises(ValueError, match="prepared otherwise"):
        training_run_import(source=tmp_path / "other")
    assert TrainingRun.objects.count() == 1 and not (Path(settings.DATA_DIR) / "checkpoints").exists()
