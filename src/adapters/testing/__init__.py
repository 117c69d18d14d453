"""The contract kit: billing-core's storage contract suites as an importable pytest plugin.

Test code only: it imports pytest and hypothesis (``pip install 'billing-core[testing]'``), and no
runtime module imports it (an import-linter contract says so).

- :mod:`adapters.testing.contracts`: the test classes, one per port or guarantee, to subclass;
- :mod:`adapters.testing.plugin`: the ``storage`` / ``sql_storage`` fixtures (in-memory fake,
  SQLite, PostgreSQL), enabled with ``pytest_plugins = ["adapters.testing.plugin"]``;
- :mod:`adapters.testing.storage`: :class:`StorageBackend` (a factory of units of work) and the
  migrated SQL databases the fixtures are made of;
- :mod:`adapters.testing.builders`: small factories of stored domain objects.

See ``docs/contract-kit.md``.
"""

import pytest

# Plain ``assert`` in the shipped suites explains its failures like an assert in a test file.
pytest.register_assert_rewrite("adapters.testing.contracts", "adapters.testing.builders")
