#!/usr/bin/env bash
# Builds and runs each fuzz target for SECONDS (default 600), one after the other, at the lowest
# CPU priority. Not part of CI. Usage, from anywhere in the repository:
#
#   fuzz/run.sh [SECONDS] [TARGET...]      # default: every target
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`), and python3
# for the seeds. Seeds are written into fuzz/corpus/<target>/ from the fixtures and tests at
# every run (the corpus libFuzzer grows there is kept between runs, and is not committed).
# Crashes, hangs and out-of-memory inputs land in fuzz/artifacts/<target>/.
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/fhir-pipes/fuzz-target: nightly and sanitizer
# builds must not share the normal target directory), FUZZ_SANITIZER (default address; `none`
# runs faster), FUZZ_JOBS (parallel fuzzing processes per target, default 1).
set -euo pipefail

seconds=${1:-600}
shift || true
all=(enrich_batch cdc_signal event_pattern healthlake_envelope template state_files)
if (($# > 0)); then targets=("$@"); else targets=("${all[@]}"); fi

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$fuzz_dir/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/fhir-pipes/fuzz-target}
sanitizer=${FUZZ_SANITIZER:-address}
jobs=${FUZZ_JOBS:-1}

# Longest input each target gets: a few times its largest seed.
max_len() {
    case $1 in
        enrich_batch) echo 65536 ;;        # fixture batches are up to 13 KB
        template) echo 131072 ;;           # pipes/template.yaml is 91 KB
        event_pattern) echo 8192 ;;        # a pattern is at most 4096 characters
        healthlake_envelope) echo 32768 ;; # an enriched event: a few KB
        state_files) echo 32768 ;;
        cdc_signal) echo 16384 ;;          # an SQS message: a few KB
        *) echo 4096 ;;
    esac
}

# One build of every target first, then the binaries are run directly: a source edited during
# a long sequence of runs does not trigger a rebuild between targets. FUZZ_NO_BUILD=1 skips it.
if [[ ${FUZZ_NO_BUILD:-0} != 1 ]]; then
    nice -n 19 cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" -s "$sanitizer"
fi
bin_dir=$CARGO_TARGET_DIR/$(rustc +nightly -vV | sed -n 's/^host: //p')/release

summary=()
for target in "${targets[@]}"; do
    corpus=$fuzz_dir/corpus/$target
    artifacts=$fuzz_dir/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    python3 "$fuzz_dir/seeds.py" "$target" "$corpus"
    before=$(find "$artifacts" -type f | wc -l)
    log=$fuzz_dir/artifacts/$target.log
    echo "== $target: ${seconds}s (log: $log)"
    start=$(date +%s)
    status=0
    parallel=()
    ((jobs > 1)) && parallel=(-jobs="$jobs" -workers="$jobs")
    nice -n 19 "$bin_dir/$target" "$corpus" -artifact_prefix="$artifacts/" \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 "${parallel[@]}" \
        >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    # With -jobs, each job logs to fuzz-N.log in the working directory.
    if ((jobs > 1)); then cat fuzz-*.log >>"$log" 2>/dev/null || true; rm -f fuzz-*.log; fi
    execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
    rate=$((elapsed > 0 ? execs / elapsed : 0))
    after=$(find "$artifacts" -type f | wc -l)
    if ((after > before)); then
        found="CRASH FOUND ($((after - before)) new in $artifacts)"
    elif ((status != 0)); then
        found="fuzzer exited $status (see $log)"
    else
        found="no crash"
    fi
    line="$target: ${elapsed}s, $execs executions, $rate exec/s, $found"
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
