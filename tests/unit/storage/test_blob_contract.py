"""The blob-store contract on the backends that need no server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.storage.conftest import StoreFactory
from tests.unit.storage.contract import CHECKS


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_blob_store_contract(
    make_store: StoreFactory, check: Callable[[StoreFactory], None]
) -> None:
    check(make_store)
