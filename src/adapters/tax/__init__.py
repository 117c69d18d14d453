"""Tax id verification adapters."""

from adapters.tax.stdnum_verifier import StdnumTaxIdVerifier

__all__ = ["StdnumTaxIdVerifier"]
