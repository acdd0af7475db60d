#!/usr/bin/env bash
# Checks scripts/fuzz.sh itself, in a throwaway module: a real finding fails
# at once, Go's fuzztime deadline race (faked by a go wrapper, since it cannot
# be provoked on demand) is retried, and a race that keeps coming fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
real_go="$(command -v go)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/mod" "$tmp/bin"
printf 'module fz\n\ngo 1.21\n' >"$tmp/mod/go.mod"
cat >"$tmp/bin/go" <<WRAP
#!/usr/bin/env bash
# Fakes the deadline race for the first \$RACES fuzz runs.
if [[ " \$* " == *" -fuzz "* ]]; then
	n=\$(cat "$tmp/n" 2>/dev/null || echo 0); echo \$((n + 1)) >"$tmp/n"
	if [ "\$n" -lt "\${RACES:-0}" ]; then
		printf -- '--- FAIL: FuzzX (1.00s)\n    context deadline exceeded\nFAIL\nexit status 1\n'
		exit 1
	fi
fi
exec "$real_go" "\$@"
WRAP
chmod +x "$tmp/bin/go"

# run NAME WANT RACES BODY: fuzz a one-target module and check the exit status.
run() {
	local name="$1" want="$2" races="$3" body="$4" got=0
	printf 'package fz\n\nimport "testing"\n\nfunc FuzzX(f *testing.F) {\n\tf.Add([]byte("a"))\n\tf.Fuzz(func(t *testing.T, b []byte) {\n\t\t%s\n\t})\n}\n' "$body" >"$tmp/mod/x_test.go"
	rm -rf "$tmp/n" "$tmp/mod/testdata"
	(cd "$tmp/mod" && RACES="$races" PATH="$tmp/bin:$PATH" FUZZTIME=1s bash "$here/fuzz.sh") >"$tmp/out" 2>&1 || got=$?
	if { [ "$want" = pass ] && [ "$got" -ne 0 ]; } || { [ "$want" = fail ] && [ "$got" -eq 0 ]; }; then
		echo "fuzz-selftest: $name: want $want, exit $got" >&2
		cat "$tmp/out" >&2
		exit 1
	fi
	echo "fuzz-selftest: $name: $want"
}

run "clean target" pass 0 '_ = b'
run "real finding" fail 0 'if len(b) != 1 { t.Fatal("found") }'
run "one deadline race" pass 1 '_ = b'
run "deadline race every time" fail 9 '_ = b'
run "race on a failing seed" fail 1 'if string(b) == "a" { t.Fatal("seed fails") }'
