"Shared fixtures: where the real reference data is, and small built-in datasets."
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def shared_data() -> Path:
    "`../shared/data` beside the checkout: skipped on a user's machine that lacks it, a failure in CI (where CI is set)."
    if not SHARED.is_dir():
        message = f'{SHARED} (the shared real-audio data) is missing'
        if os.environ.get('CI'): pytest.fail(message + ', and CI is set: it must be there')
        pytest.skip(message)
    return SHARED
