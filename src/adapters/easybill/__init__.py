"""Legal invoices over EasyBill's REST API v1."""

from adapters.easybill.client import EasyBillClient
from adapters.easybill.legal_invoicing import EasyBillLegalInvoicing

__all__ = ["EasyBillClient", "EasyBillLegalInvoicing"]
