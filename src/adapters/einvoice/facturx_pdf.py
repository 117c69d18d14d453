"""Factur-X / ZUGFeRD: the CII XML embedded into the rendered PDF as a PDF/A-3 associated file
(``factur-x.xml``, AFRelationship ``Data``) with the XMP Factur-X extension schema, by the
``factur-x`` library. The output intent (sRGB) is added when the PDF is rendered
(:mod:`adapters.pdf.rendering`)."""

from __future__ import annotations

from datetime import date

from facturx import generate_from_binary


def embed_facturx(pdf: bytes, cii: bytes, *, number: str, seller_name: str, issued: date,
                  credit_note: bool = False) -> bytes:
    """``pdf`` with ``cii`` embedded (the XML was validated against the XSD by the caller)."""
    kind = "Credit note" if credit_note else "Invoice"
    metadata = {"author": seller_name, "keywords": "Factur-X, ZUGFeRD, EN 16931, " + kind,
                "title": f"{seller_name}: {kind} {number}",
                "subject": f"Factur-X {kind.lower()} {number} dated {issued.isoformat()} issued by {seller_name}"}
    result: bytes = generate_from_binary(pdf, cii, flavor="factur-x", level="en16931", check_xsd=False,
                                         pdf_metadata=metadata, lang="en-US", afrelationship="data")
    return result
