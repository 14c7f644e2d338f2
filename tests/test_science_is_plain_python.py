"""The science modules never import Django: each is imported alone in a fresh interpreter."""
import subprocess
import sys

import pytest

from tests.conftest import REPO

PURE_MODULES = [
    "kb.spectra",
    "kb.preprocess",
    "kb.store",
    "kb.catalogs",
    "kb.sdss_archive",
    "kb.mock",
    "kb.bpt",
    "kb.knowledge",
    "training.model",
    "training.pretrain",
    "training.checkpoint",
    "inference.embed",
    "inference.index",
    "inference.vote",
    "inference.retrieval",
    "inference.metrics",
    "inference.timing",
    "inference.figures",
    "inference.baselines",
    "inference.tables",
]


@pytest.mark.parametrize("module", PURE_MODULES)
def test_module_imports_without_django(module):
    code = f"import sys, {module}; assert 'django' not in sys.modules, 'django was imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
