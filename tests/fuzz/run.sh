#!/bin/sh
# Run one libFuzzer target for a bounded time on a scratch copy of its committed
# corpus, so new inputs never land in tests/fuzz/corpus/.  Used by `make fuzz`:
#   sh tests/fuzz/run.sh BUILD_DIR NAME SECONDS
# Fails on any crash, sanitizer report, leak or timeout, and then shows the end
# of the log and where the input that caused it was saved.
set -u
b=$1 name=$2 secs=$3
bin=$b/fuzz_$name
work=$b/corpus/$name
log=$b/logs/$name.log
art=$b/artifacts/$name/
dict=tests/fuzz/$name.dict

rm -rf "$work"
mkdir -p "$work" "$b/logs" "$art"
cp tests/fuzz/corpus/"$name"/* "$work"/ 2>/dev/null || true
set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art"
[ -f "$dict" ] && set -- "$@" -dict="$dict"

# The project's suppressions: GLib keeps type singletons for the process's life.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:intercept_tls_get_addr=0}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

if "$bin" "$@" "$work" >"$log" 2>&1; then
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	echo "fuzz $name: ok, ${runs:-?} runs in ${secs}s, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l)"
	exit 0
fi
echo "fuzz $name: FAILED (full log: $log)" >&2
tail -n 60 "$log" >&2
echo "fuzz $name: reproduce with: $bin $art<the crash-/leak-/timeout- file above>" >&2
exit 1
