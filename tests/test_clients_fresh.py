"""Client names computed in a fresh interpreter, as ``btshark`` computes them.

Why: the version decoders of the peer-id table are built when ``inspector.clients`` is
imported (one closure per release-marker table). A test in the running process only ever
uses the decoders its first import built; a new ``python`` is the only way a change to how
they are built shows in a test. The expectations are test_clients.py's hand-written
tables (from the BEPs, the clients' sources and captures), not the code's.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys

from conftest import REPO
from test_clients import AZUREUS_STYLE, CAPTURED, SPECIAL_STYLES, TRANSMISSION, pid

NAME = """
import ast, sys
from inspector.clients import identify
print(repr([identify(peer_id) for peer_id in ast.literal_eval(sys.stdin.read())]))
"""


# Built-at-import decoders at their edges (written here, by the layouts their docstrings give).
EDGES = [
    (b"-DE1351-", "Deluge 1.3.5.1"),  # 4th char a build digit, not a release marker
    (b"-DE135s-", "Deluge 1.3.5"),  # 's': a stable release
    (b"A2-abc-", None),  # aria2's a-b-c- layout, not decimal: not aria2's
    (b"S3-1-0-x", None),  # two numbers: not Amazon S3's three
    (b"turbobtx", "TurboBT"),  # no version after the prefix: the client, no version
    (b"btpd/0.16-", "BitTorrent Protocol Daemon 0.16"),
    (b"btpdxx", "BitTorrent Protocol Daemon"),
]


def test_every_hand_written_client_name_from_a_fresh_interpreter() -> None:
    cases = ([(pid(head), name) for head, name in AZUREUS_STYLE + TRANSMISSION + SPECIAL_STYLES + EDGES]
             + sorted(CAPTURED.items()))
    # The environment passed on whole: the mutation tools (tests/mutation/) name the code under test in it.
    proc = subprocess.run([sys.executable, "-c", NAME], input=repr([peer_id for peer_id, _ in cases]),
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = ast.literal_eval(proc.stdout)
    assert [(peer_id, name) for (peer_id, _), name in zip(cases, got)] == cases
