"""`python -m aiomasto demo` shows the seed flow and that a restart requests nothing again."""

from __future__ import annotations

import re

import pytest

from aiomasto.__main__ import main


def test_demo_runs_the_flow_and_prints_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--followers", "12", "--following", "3", "--limit", "4"]) == 0
    out = capsys.readouterr().out
    assert "registered app 'aiomasto demo'" in out
    assert "obtained a Bearer token with scopes 'read'" in out
    assert "verified: the token belongs to 'aiomasto demo'" in out
    assert "first 4 followers of @alice: @fan12, @fan11, @fan10, @fan9" in out
    assert "app registrations: 0, token requests: 0" in out
    assert "mode 0600" in out
    assert out.rstrip().endswith("Demo finished: OK")
    # client ids, secrets and tokens are 43-character urlsafe base64 strings
    assert not re.search(r"[A-Za-z0-9_-]{43}", out)
