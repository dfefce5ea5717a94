import os
import secrets
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def rng(request):
    """Fresh random inputs every run; the seed is printed so a failure can be replayed
    (ORTOPS_TEST_SEED=<seed> pytest ...)."""
    seed = int(os.environ.get("ORTOPS_TEST_SEED", secrets.randbits(32)))
    print(f"[{request.node.name}] seed {seed}")
    return np.random.default_rng(seed)
