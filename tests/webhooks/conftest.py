from __future__ import annotations

import pytest
from webhook_helpers import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
