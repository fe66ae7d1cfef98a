"""The catalogue covers every reliability test, and docs/reliability.md lists every case as the tests
assert it (regenerate with ``python tests/reliability/catalogue.py --write``)."""

from __future__ import annotations

import importlib
import inspect

import catalogue

MODULES = ("test_rel_kill", "test_rel_bad_stores", "test_rel_bad_config", "test_rel_hostile", "test_rel_catalogue")


def test_every_reliability_test_is_catalogued() -> None:
    listed = {r.test for r in catalogue.all_rows()}
    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        for fn, _ in inspect.getmembers(module, inspect.isfunction):
            if fn.startswith("test_") and f"{name}::{fn}" not in listed and f"{name}::*" not in listed:
                missing.append(f"{name}::{fn}")
    assert missing == [], f"tests without a catalogue row: {missing}"


def test_catalogue_rows_point_at_real_tests() -> None:
    for row in catalogue.all_rows():
        module, fn = row.test.split("::")
        if fn != "*":
            assert hasattr(importlib.import_module(module), fn), row.test


def test_doc_lists_every_case_as_asserted() -> None:
    text = catalogue.DOC.read_text()
    table = text[text.index(catalogue.START):text.index(catalogue.END)]
    lines = table.splitlines()
    for row in catalogue.all_rows():
        status = f"**XFAIL** {row.bug}" if row.bug else "pass"
        prefix = f"| {row.case} | {row.component} | {row.fault} | {row.expected} | {status} |"
        assert any(line.startswith(prefix) for line in lines), f"docs/reliability.md is stale for: {prefix}"
    assert len([ln for ln in lines if ln.startswith("| ") and not ln.startswith("| case")]) == len(
        catalogue.all_rows()), "docs/reliability.md lists cases the tests no longer check"


def test_every_open_bug_is_described_in_the_doc() -> None:
    text = catalogue.DOC.read_text()
    bugs = {row.bug.split(":")[0] for row in catalogue.all_rows() if row.bug}
    for bug in sorted(bugs):
        assert f"### {bug}" in text, f"{bug} has no 'Open bugs' entry with a proposed fix"
