"""``trunkline demo`` as a newcomer runs it: one command, a real call on loopback, a clean exit."""

import re
import subprocess
import sys


def test_demo_places_a_call_through_the_echo_agent_and_exits_cleanly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trunkline", "demo", "--seconds", "2"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CHANNEL_ANSWER" in result.stdout and "CHANNEL_HANGUP_COMPLETE" in result.stdout
    assert re.search(r": COMPLETED \(Q\.850 16\)", result.stdout), result.stdout  # hung up, not timed out
    summary = re.search(r"RTP sent (\d+) / received (\d+), lost (\d+)", result.stdout)
    assert summary and int(summary[1]) > 50 and int(summary[2]) > 50
    assert not list(tmp_path.iterdir())  # it leaves nothing behind in the working directory
