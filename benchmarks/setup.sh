#!/usr/bin/env bash
# Install what `manyget bench` compares manyget against, on Debian or Ubuntu:
# nginx (for --nginx), aria2c, curl and wget2 from the system's packages, and parfive plus
# matplotlib (for --plot) from PyPI. Nothing is started; `manyget bench` starts its own
# loopback servers and stops them by PID.
#
#   bash benchmarks/setup.sh && manyget bench --nginx --plot docs/bench.png
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
if command -v apt-get >/dev/null; then
    $sudo_ apt-get update -qq
    $sudo_ apt-get install -y -qq nginx aria2 curl wget2 >/dev/null
else
    echo "setup: no apt-get here; install nginx, aria2, curl and wget2 with your package tool" >&2
fi
python3 -m pip install --quiet -e '.[plot]' parfive

for tool in nginx aria2c curl wget2; do
    path=$(command -v "$tool" || { [ -x "/usr/sbin/$tool" ] && echo "/usr/sbin/$tool"; } || true)
    printf '%-8s %s\n' "$tool" "${path:-MISSING}"
done
python3 -c "import parfive, matplotlib; print('parfive ', parfive.__version__); print('matplotlib', matplotlib.__version__)"
