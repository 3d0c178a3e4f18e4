#!/usr/bin/env bash
# Set up (CPU) and run every test: unit tests, then integration tests that start their
# own loopback Ray cluster and SeaweedFS server. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/qcraft ] || bash scripts/setup.sh cpu
bash scripts/setup_oldest.sh  # the oldest supported Ray + vLLM, for test_oldest_pair (~30 s once)
if ! command -v chromium >/dev/null; then  # the report page is tested in a real browser
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
. .venv/bin/activate
export AWS_EC2_METADATA_DISABLED=true
export HF_HUB_OFFLINE=1  # every model in the tests is local
python -m pytest -q -p no:cacheprovider --durations=25 "$@"  # the 25 slowest, to keep the suite short
