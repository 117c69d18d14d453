"""The ``billing`` command line."""
