"""The template engine against Go's recorded answers, case by case, in process.

Go (text/template + sprig v3 over kubernetes-event-exporter's EnhancedEvent) answered every case
of tests/support/template_cases.py once; tests/gotemplate/vectors.json keeps those answers and
tests/integration/test_template_conformance.py checks on every full run that Go still gives them.
"""

from __future__ import annotations

import pytest

from tests.support.template_cases import CASES, ENV_NAME, ENV_VALUE, python_render, recorded, same

ANSWERS = recorded()


def test_the_recording_is_for_this_table():
    assert [a["template"] for a in ANSWERS] == [c.template for c in CASES]


@pytest.mark.parametrize(
    ("case", "expected"),
    list(zip(CASES, ANSWERS, strict=True)),
    ids=[f"{i:03d}-{c.template[:40]}" for i, c in enumerate(CASES)],
)
def test_renders_as_go_did(case, expected, monkeypatch):
    monkeypatch.setenv(ENV_NAME, ENV_VALUE)
    problem = same(case, expected, python_render(case))
    assert problem is None, problem
