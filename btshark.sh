#!/usr/bin/env bash
# btshark from this clone, on any Debian: the first run makes .venv (Debian's python3 refuses
# `pip install` outside one, PEP 668) and installs the project into it; every run then passes
# its arguments to that btshark. With none, btshark decodes the bundled sample capture.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/.ci/venv"
exec "$here/.venv/bin/btshark" "$@"
