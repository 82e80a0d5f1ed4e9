#!/bin/sh
# Run each cmocka test binary, then print one total line: passed, failed, skipped.
# A skip means this machine lacks something a test needs (root, a pty, the kernel
# keyring).  CI has all of them, so there (CI=true) a skip fails the run.
passed=0 failed=0 skipped=0 status=0 names=
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
for t in "$@"; do
	if "$t" >"$tmp" 2>&1; then :; else status=1; fi
	cat "$tmp"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$tmp" | tail -n 1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$tmp" | tail -n 1)
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$tmp" | tail -n 1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	skipped=$((skipped + ${s:-0}))
	names="$names$(sed -n "s|^\[  SKIPPED \] \([A-Za-z0-9_]*\)\$| ${t##*/}:\1|p" "$tmp" | sort -u | tr -d '\n')"
	# A binary that crashed before its summary counts as one failure.
	[ -z "$p$f$s" ] && failed=$((failed + 1)) && status=1
done
echo "unit: $passed passed, $failed failed, $skipped skipped"
if [ "$skipped" -gt 0 ]; then
	echo "unit: skipped:$names"
	if [ "${CI:-}" = true ]; then
		echo "unit: CI=true and a test was skipped: CI runs as root with a pty and the kernel keyring, so none may be" >&2
		status=1
	fi
fi
exit $status
