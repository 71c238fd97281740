#!/usr/bin/env bash
# Measures HealthLake change capture against the local stand-in (tests/fhir-store, Node, one
# thread) and moto (SQS, EventBridge, DynamoDB): Patient writes (PUT, signed, varied resources)
# → the stand-in's CloudTrail signals on the moto queue ChangeCaptureQueue → `fhir-pipes run
# --pipe HealthLakeChangePipe` with the release healthlake-hydrator and healthlake-publisher
# behind its local Runtime API → the moto CDC bus → a rule → a queue, read with SentTimestamp.
#   1. follow: ids shown, the pipe runs with --follow while the writes happen: events/s from
#      the first write to the last event on the bus, lag meta.lastUpdated → bus (p50/p99).
#   2. queued: ids shown, all writes first, then `fhir-pipes run` over the queued signals
#      (the pipe alone: wall time and --summary-json), store GETs per resource.
#   3. healthlake-hydrator and healthlake-publisher behind bench/lambda_invoke.py on a 100-signal
#      batch of run 2's signals (init, invocation, peak RSS): 5 invocations of one hydrator; 3
#      fresh publisher processes of 1 invocation each (each with its own empty de-dup table, so
#      every event is put on the bus).
#   4. hidden: CloudTrail ids hidden (HIDDEN_DUE_TO_SECURITY_REASONS), queued: searches per type
#      per batch and their pages.
# Everything listens on 127.0.0.1 and every step is bounded by `timeout`.
# Usage: bench/cdc.sh [WRITES] [BATCH_SIZE] [HIDDEN_WRITES]   (defaults 5000 100 1000)
# Env: CDC_CONCURRENCY (write connections, 4), CDC_WINDOW (batching window s, 1),
#      CDC_TIMEOUT (s per run, 900), PYTHON (with boto3 and moto; default the tests' venv),
#      CDC_SKIP_BUILD=1 (use the release binaries as they are), CDC_RESULTS=DIR (keep the JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
writes="${1:-5000}"
batch_size="${2:-100}"
hidden_writes="${3:-1000}"
concurrency="${CDC_CONCURRENCY:-4}"
window="${CDC_WINDOW:-1}"
run_timeout="${CDC_TIMEOUT:-900}"
target="${CARGO_TARGET_DIR:-target}"
python="${PYTHON:-$target/fhir-pipes-tools/venv/bin/python}"
datastore=0123456789abcdef0123456789abcdef
access_key=AKIDBENCH secret=bench-secret
"$python" -c 'import boto3, moto' 2>/dev/null || {
  echo "$python has no boto3/moto: run a moto test once (cargo test -p fhir-pipes-e2e --test cdc_pipe) or set PYTHON" >&2; exit 1; }

[ "${CDC_SKIP_BUILD:-}" = 1 ] || timeout 1800 cargo build --release --locked -p fhir-pipes -p fhir-pipes-healthlake -p fhir-pipes-publisher --bins
(cd tests/fhir-store && [ -d node_modules/@medplum/fhir-router ] || timeout 600 npm ci --no-audit --no-fund)
bin="$target/release"
work="$(mktemp -d)"
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
moto_port="$(free_port)" store_port="$(free_port)"
"$python" -m moto.server -H 127.0.0.1 -p "$moto_port" > "$work/moto.log" 2>&1 &
moto=$!
node tests/fhir-store/server.mjs --port "$store_port" --datastore "$datastore" --region us-east-1 \
  --access-key-id "$access_key" --secret-access-key "$secret" > "$work/store.log" 2>&1 &
store=$!
keep() { [ -z "${CDC_RESULTS:-}" ] || { mkdir -p "$CDC_RESULTS" && cp "$work"/run-*.json "$work"/lambda-*.json "$CDC_RESULTS"/ 2>/dev/null; }; }
trap 'kill $store $moto 2>/dev/null; keep || true; rm -rf "$work"' EXIT
for _ in $(seq 300); do
  grep -qs listening "$work/store.log" && curl -sf -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" && break
  kill -0 $store && kill -0 $moto || break; sleep 0.2
done
grep -q listening "$work/store.log" || { echo "the FHIR store did not start:"; cat "$work/store.log"; exit 1; } >&2
curl -sf -o /dev/null "http://127.0.0.1:$moto_port/moto-api/" || { echo "moto did not start:"; cat "$work/moto.log"; exit 1; } >&2

scenario() { # NAME IDS MODE WRITES [extra args]
  local name=$1 ids=$2 mode=$3 n=$4; shift 4
  timeout $((run_timeout + 300)) "$python" bench/cdc_measure.py scenario --name "$name" --ids "$ids" --mode "$mode" \
    --writes "$n" --batch-size "$batch_size" --window "$window" --concurrency "$concurrency" --timeout "$run_timeout" \
    --store "http://127.0.0.1:$store_port" --moto "http://127.0.0.1:$moto_port" --datastore "$datastore" \
    --work "$work" --out "$work/run-$name.json" --fhir-pipes "$bin/fhir-pipes" --hydrator "$bin/healthlake-hydrator" \
    --publisher "$bin/healthlake-publisher" --access-key "$access_key" --secret "$secret" "$@"
}
started=$SECONDS
scenario follow shown follow "$writes"
scenario queued shown queued "$writes"

echo "== Lambdas behind bench/lambda_invoke.py (100-signal batch, ids shown)"
endpoint="http://127.0.0.1:$store_port/datastore/$datastore/r4/"
store_env=(--env "FHIR_PIPES_HEALTHLAKE_ENDPOINT=$endpoint" --env "AWS_ACCESS_KEY_ID=$access_key"
  --env "AWS_SECRET_ACCESS_KEY=$secret" --env AWS_REGION=us-east-1)
timeout 300 "$python" bench/cdc_measure.py lambda-inputs --store "http://127.0.0.1:$store_port" \
  --moto "http://127.0.0.1:$moto_port" --hydrator "$bin/healthlake-hydrator" --size 100 --tables 3 \
  --hydrator-event "$work/hydrator-batch.json" --publisher-event "$work/publisher-batch.json" "${store_env[@]}"
timeout 300 "$python" bench/lambda_invoke.py "$bin/healthlake-hydrator" "$work/hydrator-batch.json" --invocations 5 \
  "${store_env[@]}" | tee "$work/lambda-hydrator.json"
for n in 0 1 2; do
  timeout 300 "$python" bench/lambda_invoke.py "$bin/healthlake-publisher" "$work/publisher-batch.json" --invocations 1 \
    --env "AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port" --env AWS_ACCESS_KEY_ID=testing --env AWS_SECRET_ACCESS_KEY=testing \
    --env AWS_REGION=us-east-1 --env "FHIR_PIPES_PUBLISHER_EVENT_BUS=fhir-pipes-local-healthlake-changes" \
    --env "FHIR_PIPES_PUBLISHER_DEDUP_TABLE=BenchDedup$n" | tee "$work/lambda-publisher-$n.json"
done
# The hidden-id search reads every page since the earliest signal of the batch (less the margin):
# with all writes queued first that is nearly all of them, so allow the pages it takes.
scenario hidden hidden queued "$hidden_writes" --param "HydratorMaxPages=$(( hidden_writes / 100 + 10 ))"
for b in fhir-pipes healthlake-hydrator healthlake-publisher; do echo "$b release binary: $(stat -c %s "$bin/$b") bytes"; done
echo "$(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); measured in $((SECONDS - started)) s"
"$python" bench/cdc_measure.py table "$work"/run-follow.json "$work"/run-queued.json "$work"/run-hidden.json \
  "$work"/lambda-hydrator.json "$work"/lambda-publisher-*.json
