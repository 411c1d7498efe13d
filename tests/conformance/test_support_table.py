"""docs/support.md is generated from the conformance matrix and must match it."""

from tests.conformance.support_table import PAGE, render


def test_support_page_matches_the_matrix():
    assert PAGE.exists(), "docs/support.md is missing: run python -m tests.conformance.support_table"
    assert PAGE.read_text() == render(), "docs/support.md is out of date: run python -m tests.conformance.support_table"
