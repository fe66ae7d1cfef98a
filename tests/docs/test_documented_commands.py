"""Every command README.md and docs/ show is run, exactly as written, by some test."""

from __future__ import annotations

from tests.helpers.doc_commands import documented_commands, normalise, commands_run_by_tests

# Commands proven elsewhere than by a test in this suite, each with the reason. Keep this list short.
PROVEN_ELSEWHERE = {
    "make run": "the session's own `make run` from a clean clone (20+ minutes; too long for the suite)",
    "make test": "CI: .ci/run calls it",
    "make evidence": "the full evidence experiment (up to 75 min on 2 cores); its exact code path is run by "
                     "tests/evidence/test_evidence_e2e.py as `make evidence EVIDENCE_PARAMS=evidence/tiny.yaml`",
}


def test_every_documented_command_is_run_by_a_test() -> None:
    documented = documented_commands()
    tested = commands_run_by_tests()
    exempt = {normalise(c) for c in PROVEN_ELSEWHERE}
    missing = {c: where for c, where in documented.items() if c not in tested and c not in exempt}
    assert not missing, "documented commands no test runs (pass the exact text to run_documented):\n" + "\n".join(
        f"  {c}   [{', '.join(sorted(set(w)))}]" for c, w in sorted(missing.items())
    )


def test_extraction_joins_continuations_and_strips_comments(tmp_path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "text\n```bash\n$ pagstore verify s   # checks\npython -m stages.train --a 1 \\\n  --b 2\necho no\n```\n"
        "```python\npagstore.open_store('x')\n```\n"
    )
    assert set(documented_commands([doc])) == {"pagstore verify s", "python -m stages.train --a 1 --b 2"}
