#!/usr/bin/env bash
# Measures the Patient enricher: in-process throughput (criterion), then the release Lambda
# binary behind a local Lambda Runtime API on a 5,000-record batch (init, invocation, peak RSS)
# and its stripped size. Usage: bench/run.sh [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-5000}"
target="${CARGO_TARGET_DIR:-target}"

cargo build --release --locked -p fhir-pipes-enrichers --bin patient-enricher -p fhir-pipes --bin fhir-pipes
batch="$(mktemp --suffix .json)"
trap 'rm -f "$batch"' EXIT
"$target/release/fhir-pipes" sample patient --records "$records" > "$batch"

echo "== Lambda binary ($records records, $(stat -c %s "$batch") bytes)"
python3 bench/lambda_invoke.py "$target/release/patient-enricher" "$batch" --invocations 5
echo "release binary: $(stat -c %s "$target/release/patient-enricher") bytes (stripped by the release profile)"

echo "== In-process (criterion, one thread)"
cargo bench --locked -p fhir-pipes-enrichers --bench enrich -- --noplot
