"""Fixtures for the gradient-source tests (data builders live in sources_fixtures.py)."""

from __future__ import annotations

import pytest

from pagstore.data.prepared import PreparedSplit
from tests.sources.sources_fixtures import tiny_images, tiny_vectors


@pytest.fixture
def images_split() -> PreparedSplit:
    return tiny_images()


@pytest.fixture
def vectors_split() -> PreparedSplit:
    return tiny_vectors()
