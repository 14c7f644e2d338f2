"""The import contracts in pyproject.toml hold the layering: they pass on the tree and fail on a copy of
it with an import that breaks each of them."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("galspec_site", "kb", "training", "inference", "experiments", "bench")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))

pytestmark = pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter is not installed")


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-logo", "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree)},
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    """The project's packages and pyproject.toml, copied: the imports of the copy are what is linted."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}  # breaks a contract\n")


def test_the_tree_keeps_every_contract(tree):
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("kb.spectra", "import django.db", "Only Django code imports Django"),  # science, directly
        ("inference.index", "from kb.models import Spectrum", "Only Django code imports Django"),  # through a model
        ("kb.selectors", "from inference.models import SearchJob", "kb is the base"),
        ("inference.tasks", "from experiments.evaluation import evaluate", "kb is the base"),
        ("inference.selectors.background", "from inference.services.search import MAX_K", "inference: pages and API"),
        ("inference.worker.jobs", "from inference.tasks import search_job_run_task", "inference: pages and API"),
        ("training.model", "from training.services import training_run_create", "training: commands and tasks"),
    ],
)
def test_an_import_against_the_layering_breaks_its_contract(tree, module, line, contract):
    add_import(tree, module, line)
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken and module in broken


def test_where_things_are_in_the_readme_matches_the_tree():
    """Every top-level package has a row in README's table, and every module named in a row's "what lives
    there" exists in its folder."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z_]+)/`[^|]*\| ([^|]*)\|", section, re.M)}
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(rows), f"no row for {sorted(packages - set(rows))}"
    for folder, row in rows.items():
        named = set(re.findall(r"`([a-z_]+)/?`", row))
        missing = [n for n in named if not any((REPO / folder).rglob(f"{n}.py")) and not any((REPO / folder).rglob(n))]
        assert not missing, f"{folder}/: README names {missing}, which are not there"
