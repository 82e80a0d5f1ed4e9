#!/bin/sh
# Run each cmocka test binary, then print one total line.
passed=0 failed=0 status=0
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
for t in "$@"; do
	if "$t" >"$tmp" 2>&1; then :; else status=1; fi
	cat "$tmp"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$tmp" | tail -n 1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$tmp" | tail -n 1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	# A binary that crashed before its summary counts as one failure.
	[ -z "$p$f" ] && failed=$((failed + 1)) && status=1
done
echo "unit: $passed passed, $failed failed"
exit $status
