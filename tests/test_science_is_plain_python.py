"""The science modules never import Django: each is imported alone in a fresh interpreter.

They are found, not listed: every module of the apps that plays no Django role. The roles are the
allowed importers of the ``science`` contract in pyproject.toml, which `lint-imports` holds statically;
this test holds the same line at run time, where a lazy import inside a function would show.
"""

import fnmatch
import pkgutil
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO

APPS = ("kb", "training", "inference", "experiments")


def _django_roles() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["id"] == "science")
    return contract["allowed_importers"]


def _plays_a_role(module: str, roles: list[str]) -> bool:
    """A module matches a role, or lies inside a package that does (contracts treat modules as packages)."""
    parts = module.split(".")
    prefixes = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(prefix, role) for prefix in prefixes for role in roles)


def science_modules() -> list[str]:
    roles = _django_roles()
    found = []
    for app in APPS:
        for module in pkgutil.walk_packages([str(REPO / app)], prefix=f"{app}."):
            if not _plays_a_role(module.name, roles):
                found.append(module.name)
    return sorted(found)


def test_the_science_is_found_where_it_lives():
    """The discovery finds what the house style calls science, and nothing that plays a Django role."""
    found = set(science_modules())
    assert {
        "kb.spectra",
        "kb.mock.writer",
        "kb.plots",
        "training.model",
        "training.pretrain",
        "inference.index",
        "inference.vote",
        "inference.retriever",
        "inference.metric",
        "inference.answers",
        "experiments.baselines",
        "experiments.figures",
    } <= found
    assert not found & {
        "kb.models",
        "inference.services.search",
        "inference.services.leases",
        "inference.selectors.store_check",
        "experiments.evaluation",
        "kb.services.curation",
        "inference.views.search",
    }


@pytest.mark.parametrize("module", science_modules())
def test_module_imports_without_django(module):
    code = f"import sys, {module}; assert 'django' not in sys.modules, 'django was imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
