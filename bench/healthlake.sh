#!/usr/bin/env bash
# Measures the HealthLake target against the local stand-in (tests/fhir-store: Medplum's FHIR
# engine behind a SigV4 check, Node, one thread): resources written per second through
# `fhir-pipes run` (file → enrichment → HealthLake target), first creating then updating the
# same patients; then the release `healthlake-target` Lambda behind a local Runtime API on one
# batch of enriched events (init, invocation, peak RSS) and its size.
# Usage: bench/healthlake.sh [RECORDS] [BATCH_SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-5000}"
batch_size="${2:-100}"
target="${CARGO_TARGET_DIR:-target}"
port=18080
datastore=0123456789abcdef0123456789abcdef
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
endpoint="http://127.0.0.1:$port/datastore/$datastore/r4/"

cargo build --release --locked -p fhir-pipes -p fhir-pipes-healthlake --bins
(cd tests/fhir-store && [ -d node_modules/@medplum/fhir-router ] || npm ci --no-audit --no-fund)
work="$(mktemp -d)"
node tests/fhir-store/server.mjs --port "$port" --datastore "$datastore" --region us-east-1 \
  --access-key-id "$AWS_ACCESS_KEY_ID" --secret-access-key "$AWS_SECRET_ACCESS_KEY" > "$work/store.log" 2>&1 &
store=$!
trap 'kill $store 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do grep -q listening "$work/store.log" && break; kill -0 $store || break; sleep 0.2; done
grep -q listening "$work/store.log" || { echo "the FHIR store did not start:"; cat "$work/store.log"; exit 1; } >&2

"$target/release/fhir-pipes" sample patient --records "$records" > "$work/records.json"
for pass in create update; do
  "$target/release/fhir-pipes" run -i "$work/records.json" -p TargetType=HealthLake \
    -p "HealthLakeDatastoreEndpoint=$endpoint" -p "BatchSize=$batch_size" \
    --dead-letter "$work/dead.ndjson" --quiet --summary-json "$work/summary.json"
  echo "== fhir-pipes run → HealthLake target ($pass, $records records, BatchSize $batch_size)"
  python3 - "$work/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rate = s["delivered"] / s["elapsedSeconds"]
print(f"delivered {s['delivered']}, dead-lettered {s['deadLettered']}, {s['elapsedSeconds']:.2f} s, {rate:.0f} resources/s")
PY
done

python3 - "$work/records.json" "$batch_size" > "$work/batch.json" <<'PY'
import json, sys
records = json.load(open(sys.argv[1]))[: int(sys.argv[2])]
print(json.dumps(records))
PY
"$target/release/fhir-pipes" enrich patient "$work/batch.json" > "$work/events.json"
echo "== healthlake-target Lambda ($batch_size events per invocation, updates)"
python3 bench/lambda_invoke.py "$target/release/healthlake-target" "$work/events.json" --invocations 5 \
  --env "FHIR_PIPES_HEALTHLAKE_ENDPOINT=$endpoint" --env AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  --env AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" --env AWS_REGION=us-east-1
echo "healthlake-target release binary: $(stat -c %s "$target/release/healthlake-target") bytes"
