import hashlib

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from experiments import baselines, supervised
from inference.retriever import VotePolicy
from training.checkpoint import save_checkpoint
from training.model import EncoderConfig, MaskedSpectrumModel

L = 3688  # pixels on the paper's grid
TINY = EncoderConfig(d_model=16, n_layers=1, n_heads=2, pool_segments=8)  # the paper's patching, a tiny Transformer;
# the classes differ at pixels no line window covers: the segments carry them


def synthetic_survey(n_per_class, seed):
    """Noisy sloped continua (normalised flux ~1) whose class shows in one feature, a little shifted as
    by redshift: an emission line, an emission doublet or an absorption line, each at its own place.
    The blue end is unobserved for a random number of pixels (flux 0, valid False)."""
    rng = np.random.default_rng(seed)
    x = np.arange(L)
    flux, valid, labels = [], [], []
    for label in ("absorber", "doublet", "emitter"):
        for _ in range(n_per_class):
            shift = rng.integers(-10, 11)

            def line(centre, amplitude, sigma, shift=shift):
                return amplitude * np.exp(-0.5 * ((x - centre - shift) / sigma) ** 2)

            f = 1 + rng.normal(0, 0.2) * (x / L - 0.5) + rng.normal(0, 0.1, L)
            f += {
                "emitter": line(900, 1.5, 4),
                "doublet": line(1800, 1.0, 4) + line(1830, 1.0, 4),
                "absorber": line(2700, -0.6, 8),
            }[label]
            v = x >= rng.integers(0, 40)
            flux.append(np.where(v, f, 0))
            valid.append(v)
            labels.append(label)
    order = rng.permutation(len(labels))
    return np.array(flux, np.float32)[order], np.array(valid)[order], [labels[i] for i in order]


@pytest.fixture(scope="module")
def labelled():
    return synthetic_survey(30, seed=0)


@pytest.fixture(scope="module")
def held_out():
    return synthetic_survey(10, seed=1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint folder holding a freshly initialised tiny model."""
    folder = tmp_path_factory.mktemp("run") / "best"
    torch.manual_seed(0)
    info = {"model": TINY.to_dict(), "preprocess": {}, "training": {}, "metrics": {}}
    save_checkpoint(folder, MaskedSpectrumModel(TINY), info)
    return folder


def accuracy(predicted, truth):
    return float(np.mean(np.array(predicted) == np.array(truth)))


# Every method called the same way: (train flux, valid, labels, test flux, valid) -> labels.
METHODS = {
    "flux_knn": lambda f, v, l, tf, tv, **kw: baselines.flux_knn(f, l, tf, **kw),
    "pca_knn": lambda f, v, l, tf, tv, **kw: baselines.pca_knn(f, l, tf, **kw),
    "random_forest": lambda f, v, l, tf, tv, **kw: baselines.random_forest(f, l, tf, n_estimators=50, **kw),
    "cnn": lambda f, v, l, tf, tv, **kw: baselines.cnn(f, v, l, tf, tv, **{"epochs": 6, "batch_size": 16, **kw}),
    "encoder_finetuned": lambda f, v, l, tf, tv, checkpoint=None, **kw: baselines.encoder_finetuned(
        checkpoint,
        f,
        v,
        l,
        tf,
        tv,
        **{
            "train_z": np.full(len(f), 0.1),
            "test_z": np.full(len(tf), 0.1),
            "epochs": 3,
            "lr": 3e-3,
            "batch_size": 16,
            **kw,
        },
    ),
}


def test_the_validation_split_is_stratified_seeded_and_trains_on_every_class():
    y = np.repeat([0, 1, 2], [50, 20, 1])
    fit, val = supervised.validation_split(y, seed=3)
    assert np.bincount(y[val], minlength=3).tolist() == [5, 2, 0]  # 10% of each; a lone spectrum stays
    assert np.array_equal(np.sort(np.concatenate([fit, val])), np.arange(len(y)))
    again_fit, again_val = supervised.validation_split(y, seed=3)
    assert np.array_equal(fit, again_fit) and np.array_equal(val, again_val)
    assert not np.array_equal(val, supervised.validation_split(y, seed=4)[1])


def test_tiny_classes_still_give_one_validation_spectrum_or_a_clear_error():
    fit, val = supervised.validation_split(np.array([0, 0, 1]), seed=0)
    assert len(val) == 1 and val[0] in (0, 1) and 2 in fit
    with pytest.raises(ValueError, match="single training spectrum"):
        supervised.validation_split(np.array([0, 1]), seed=0)


def test_the_flux_vote_finds_each_training_spectrum_itself(labelled):
    flux, _, labels = labelled
    assert baselines.flux_knn(flux, labels, flux, policy=VotePolicy(k=1)) == labels
    few = 8  # more neighbours than spectra: all of them vote
    assert (
        baselines.flux_knn(
            flux[:few], labels[:few], flux[:2], policy=VotePolicy(k=15, weighting="linear", temperature=0.01)
        )
        == labels[:2]
    )


def test_the_shortcut_vote_finds_a_label_that_only_the_catalog_carries():
    rng = np.random.default_rng(0)
    # lenses at high z and dispersion, others low: the catalog alone separates them (the shortcut to catch)
    z = np.r_[rng.uniform(0.12, 0.4, 40), rng.gamma(3, 0.028, 160)]
    vdisp = np.r_[rng.uniform(200, 320, 40), rng.uniform(60, 250, 160)]
    sn = rng.lognormal(np.log(14), 0.4, 200)
    vdisp[5] = np.nan  # not measured: the training median stands in
    features, labels = np.c_[z, vdisp, sn], ["lens"] * 40 + ["other"] * 160
    test = np.array([[0.3, 280.0, 12.0], [0.05, 120.0, 15.0], [0.3, np.nan, 12.0]])
    assert baselines.shortcut_knn(features, labels, test) == ["lens", "other", "lens"]
    with pytest.raises(ValueError, match="same F"):
        baselines.shortcut_knn(features, labels, test[:, :2])


@pytest.mark.parametrize("name", ["flux_knn", "pca_knn", "random_forest"])
def test_the_classical_methods_beat_chance_on_held_out_spectra(name, labelled, held_out):
    flux, valid, labels = labelled
    test_flux, test_valid, truth = held_out
    predicted = METHODS[name](flux, valid, labels, test_flux, test_valid)
    assert len(predicted) == len(truth) and set(predicted) <= set(labels)
    assert accuracy(predicted, truth) >= 0.9  # chance is 1/3


def test_the_random_forest_repeats_for_a_seed(labelled, held_out):
    flux, _, labels = labelled
    noise = np.random.default_rng(5).normal(0, 0.5, held_out[0].shape).astype(np.float32)
    noisy = held_out[0] + noise  # hard enough that trees disagree
    first = baselines.random_forest(flux, labels, noisy, seed=7, n_estimators=50)
    assert baselines.random_forest(flux, labels, noisy, seed=7, n_estimators=50) == first
    assert baselines.random_forest(flux, labels, noisy, seed=8, n_estimators=50) != first  # the seed is what fixes it


def test_the_cnn_learns_repeats_for_a_seed_and_leaves_the_global_rng_alone(labelled, held_out):
    flux, valid, labels = labelled
    test_flux, test_valid, truth = held_out

    def run(seed, **options):
        reports = []
        predicted = METHODS["cnn"](
            flux,
            valid,
            labels,
            test_flux,
            test_valid,
            seed=seed,
            **options,
            on_progress=lambda step, total, report: reports.append((step, total, report)),
        )
        return predicted, reports

    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, reports = run(seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert accuracy(first, truth) >= 0.8 and set(first) <= set(labels)
    checked = [step for step, _, report in reports if "val_loss" in report]
    assert checked[:6] == [2, 5, 7, 10, 12, 15]  # twice in each epoch of five batches
    again, same_seed = run(seed=1)
    assert again == first and same_seed == reports  # every loss, to the last bit
    assert run(seed=2, epochs=1)[1] != reports[:5]


def test_pca_is_fit_on_the_training_spectra_only(labelled, held_out):
    flux, _, labels = labelled
    test_flux, _, truth = held_out
    wild = np.ones((200, L), np.float32)  # huge variance where no class shows
    wild[:, 3100:3600] += 20 * np.random.default_rng(2).normal(size=(200, 500)).astype(np.float32)
    more = np.concatenate([test_flux, wild])
    # components fit on all spectra would describe the wild ones, and the vote on them would be chance...
    alone, everything = PCA(8).fit(flux), PCA(8).fit(np.concatenate([flux, more]))
    assert np.abs(alone.components_ @ everything.components_.T).max() < 0.5
    # ...so the original test spectra keep their predictions only if PCA never saw the test spectra
    predicted = baselines.pca_knn(flux, labels, test_flux, n_components=8)
    assert baselines.pca_knn(flux, labels, more, n_components=8)[: len(test_flux)] == predicted
    assert accuracy(predicted, truth) >= 0.9


def test_pca_components_are_capped_by_the_training_set(labelled, held_out):
    flux, _, labels = labelled
    assert len(baselines.pca_knn(flux[:20], labels[:20], held_out[0], n_components=64)) == len(held_out[0])


def file_hashes(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_the_fine_tuned_encoder_learns_and_leaves_its_checkpoint_unchanged(labelled, held_out, checkpoint):
    flux, valid, labels = labelled
    test_flux, test_valid, truth = held_out
    before = file_hashes(checkpoint)
    predicted = METHODS["encoder_finetuned"](flux, valid, labels, test_flux, test_valid, checkpoint=checkpoint)
    assert file_hashes(checkpoint) == before
    assert accuracy(predicted, truth) >= 0.8 and set(predicted) <= set(labels)


ERRORS = {
    "labels": ("3 training spectra but 2 labels", lambda f, v: (f[:3], v[:3], ["a", "b"], f[3:], v[3:])),
    "classes": ("needs at least 2", lambda f, v: (f[:3], v[:3], ["a", "a", "a"], f[3:], v[3:])),
    "empty test": ("no test spectra", lambda f, v: (f[:3], v[:3], ["a", "b", "a"], f[:0], v[:0])),
    "pixels": ("onto the same grid", lambda f, v: (f[:3], v[:3], ["a", "b", "a"], f[3:, :10], v[3:, :10])),
}


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("error", ERRORS)
def test_bad_inputs_get_errors_a_person_can_act_on(name, error, checkpoint):
    message, arguments = ERRORS[error]
    flux, valid = np.ones((5, 50), np.float32), np.ones((5, 50), bool)
    options = {"checkpoint": checkpoint} if name == "encoder_finetuned" else {}
    with pytest.raises(ValueError, match=message):
        METHODS[name](*arguments(flux, valid), **options)


def test_a_validity_mask_must_match_its_flux(labelled, held_out):
    flux, valid, labels = labelled
    with pytest.raises(ValueError, match=r"test_valid is \(30, 10\) but test_flux is \(30, 3688\)"):
        baselines.cnn(flux, valid, labels, held_out[0], held_out[1][:, :10])


def test_the_fine_tuned_encoder_needs_one_redshift_per_spectrum(labelled, held_out, checkpoint):
    flux, valid, labels = labelled
    with pytest.raises(ValueError, match=r"train_z must hold one finite redshift per spectrum \(\d+\)"):
        baselines.encoder_finetuned(checkpoint, flux, valid, labels, *held_out[:2], train_z=[0.1], test_z=[0.1])


def test_the_networks_learn_rare_classes_on_a_balanced_loss_with_a_decaying_rate(labelled, held_out):
    """Few doublets among many: class-balanced cross-entropy and weights chosen on validation macro-F1
    (not loss) keep the rare class predicted; the learning rate falls along the cosine."""
    flux, valid, labels = labelled
    keep = [i for i, label in enumerate(labels) if label != "doublet" or i % 6 == 0]  # 5 doublets, 60 others
    reports = []
    predicted = baselines.cnn(
        flux[keep],
        valid[keep],
        [labels[i] for i in keep],
        held_out[0],
        held_out[1],
        seed=0,
        epochs=12,
        batch_size=16,
        on_progress=lambda step, total, report: reports.append(report),
    )
    doublets = [p for p, t in zip(predicted, held_out[2]) if t == "doublet"]
    assert doublets.count("doublet") >= 3  # 0 of 10 on plain cross-entropy with the weights of lowest loss
    rates = [report["lr"] for report in reports]
    assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0]
    assert all("val_macro_f1" in report for report in reports if "val_loss" in report)


def test_macro_f1_counts_a_class_never_predicted_as_zero():
    truth, predicted = np.array([0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 1])
    assert supervised.macro_f1(truth, predicted, 3) == pytest.approx((1 + 0.8 + 0) / 3)
