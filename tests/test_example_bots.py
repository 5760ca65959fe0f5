"""The example bots (examples/bots) run as a user runs them: ``python -m ... --demo``.

Each demo starts a FakeMastodon in its own process, runs the bot against it and writes the
fake's final state to a file; the assertions here read that state, not the demo's verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_demo(module: str, tmp_path: Path) -> tuple[str, Any]:
    state = tmp_path / "state.json"
    done = subprocess.run(
        [sys.executable, "-m", f"examples.bots.{module}", "--demo", "--state-json", str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("OK"), done.stdout
    return done.stdout, json.loads(state.read_text())


def test_reply_bot_answers_each_mention_once_across_a_drop_and_a_replay(tmp_path: Path) -> None:
    out, state = run_demo("reply_bot", tmp_path)
    # One mention waiting at start, one on the stream, one made while the stream was down;
    # then a restart is handed an answered mention again.
    assert len(state["mentions"]) == 3
    assert state["replies_per_mention"] == {m: 1 for m in state["mentions"]}
    assert len(state["replies"]) == 3
    assert state["left_in_notifications"] == []
    assert "dropping 1 stream connection(s)" in out


def test_follow_back_follows_each_new_follower_once(tmp_path: Path) -> None:
    out, state = run_demo("follow_back", tmp_path)
    assert state["following"] == ["alice", "bob", "carol", "dave"]
    # carol was followed already; the restart and the replayed notification send nothing.
    assert state["follow_requests"] == {"alice": 1, "bob": 1, "carol": 0, "dave": 1}
    assert out.count("followed back @") == 3


def test_image_bot_posts_one_status_with_its_described_image(tmp_path: Path) -> None:
    _, state = run_demo("image_bot", tmp_path)
    [status] = state["statuses"]
    assert status["media"] == [
        {"id": status["media"][0]["id"], "type": "image", "description": "A plain blue square"}
    ]
    # The upload was still processing twice before it was ready, and was waited for.
    assert state["media_polls"] == 3


@pytest.mark.parametrize("module", ["reply_bot", "follow_back", "image_bot"])
def test_a_bot_without_a_token_says_so(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"examples.bots.{module}", "--instance", "https://x.example"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1
    assert "MASTODON_TOKEN" in done.stderr
