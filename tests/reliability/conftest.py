"""The HTTP app fixtures of the end-to-end tier, for the reliability tests that drive it."""

from tests.e2e.conftest import api, shared_api, world

__all__ = ["api", "shared_api", "world"]
