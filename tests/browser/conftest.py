import os
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM

HERE = Path(__file__).parent
REASON = f"Chromium not found at {CHROMIUM}: install Debian's chromium or set CHROMIUM"


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE not in Path(item.path).parents:
            continue
        item.add_marker(pytest.mark.browser)
        if not os.path.exists(CHROMIUM):
            item.add_marker(pytest.mark.skip(reason=REASON))
