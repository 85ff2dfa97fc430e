"""The switch that turns the party tests on: exact, so that they run as soon as they can."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.party_api import PARTY_API_MISSING, app_document, party_api_missing


def _with_quantity(document: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    body = changed["paths"]["/book"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].removeprefix("#/components/schemas/")
    changed["components"]["schemas"][ref]["properties"]["quantity"] = {"type": "integer"}
    return changed


def test_the_switch_reads_the_app_as_it_is() -> None:
    document = app_document()
    assert party_api_missing(document) == PARTY_API_MISSING


def test_a_book_body_with_quantity_turns_the_party_tests_on() -> None:
    document = app_document()
    if PARTY_API_MISSING is None:
        assert party_api_missing(document) is None
        return
    assert "no `quantity`" in PARTY_API_MISSING
    assert party_api_missing(_with_quantity(document)) is None


def test_a_document_without_a_book_body_is_a_failure_not_a_skip() -> None:
    document = copy.deepcopy(app_document())
    del document["paths"]["/book"]
    with pytest.raises(KeyError):
        party_api_missing(document)
