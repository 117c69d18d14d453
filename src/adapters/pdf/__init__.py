"""The offline legal-invoice adapter: PDFs rendered locally with fpdf2."""

from adapters.pdf.local_invoicing import LocalPdfLegalInvoicing
from adapters.pdf.rendering import SellerDetails

__all__ = ["LocalPdfLegalInvoicing", "SellerDetails"]
