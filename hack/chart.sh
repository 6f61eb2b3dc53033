#!/usr/bin/env bash
# Prints the path of a copy of the stand-in gateway chart (tests/charts/gateway) that carries
# Istio's real values.schema.json, so Helm enforces the same schema as Istio's chart.
# Schema from $MESHGUARD_ISTIO_FIXTURES/<version>/gateway-values.schema.json (default
# ../shared/fixtures/istio/1.23.4); without it the chart is used as is.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIX="${MESHGUARD_ISTIO_FIXTURES:-$ROOT/../shared/fixtures/istio}/${MESHGUARD_ISTIO_VERSION:-1.23.4}"
OUT="${1:?usage: hack/chart.sh OUTDIR}"
rm -rf "$OUT/gateway" && mkdir -p "$OUT" && cp -r "$ROOT/tests/charts/gateway" "$OUT/gateway"
if [[ -f "$FIX/gateway-values.schema.json" ]]; then
  cp "$FIX/gateway-values.schema.json" "$OUT/gateway/values.schema.json"
fi
echo "$OUT/gateway"
