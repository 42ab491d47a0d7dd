#!/bin/sh
# run.sh BUILD - runs every benchmark of `make bench` and prints a summary.
#
# Runs, in this order, each program BUILD/bench/bench_* (built from
# bench/bench_*.c), then each comparison script: bench/*.py with Debian's
# /usr/bin/python3 (the python3 on PATH may lack python3-torch) and
# bench/cmp_*.sh with sh.  Every one prints its own human-readable lines and
# one machine-readable line per measure,
#     RESULT <name> key=value key=value ...
# which this script collects.  It ends with a table of the targets it knows
# (DESIGN.md "Targets to beat") and then every RESULT line, so a new
# benchmark shows up without editing this file.
#
# Threads: EG_BENCH_THREADS (default 2) is exported, and OPENBLAS_NUM_THREADS
# and OMP_NUM_THREADS are set to the same value so that no library sizes its
# pool differently from what the programs ask for.  OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE are passed through untouched (see bench/README.md).
#
# Exit status: 0 if every program and script ran, 1 if any failed; a missed
# target is a result, marked MISSED in the table, not a failure.
set -u

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
threads=${EG_BENCH_THREADS:-2}
export EG_BENCH_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
	OMP_NUM_THREADS="$threads"
python=/usr/bin/python3

results=$(mktemp) || exit 1
rcfile=$(mktemp) || exit 1
outfile=$(mktemp) || exit 1
trap 'rm -f "$results" "$rcfile" "$outfile"' EXIT
trap 'exit 130' INT TERM
failed=""

load() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?"; }

# run NAME CMD...: runs one benchmark, shows its output as it comes,
# keeps its RESULT lines and remembers a failure.
run() {
	name=$1
	shift
	echo
	echo "== $name (load $(load))"
	{ "$@" 2>&1; echo $? >"$rcfile"; } | tee "$outfile"
	grep '^RESULT ' "$outfile" >>"$results"
	rc=$(cat "$rcfile")
	if [ "$rc" != 0 ]; then
		echo "!! $name failed (exit $rc)"
		failed="$failed $name"
	fi
}

load0=$(load)
echo "expgrid benchmarks: $threads threads, $(nproc) CPUs, load $load0"
ob=$(env | grep '^OPENBLAS_' | grep -v '^OPENBLAS_NUM_THREADS=' | tr '\n' ' ')
[ -n "$ob" ] && echo "OpenBLAS environment: $ob"

found=0
for prog in "$build"/bench/bench_*; do
	if [ ! -f "$prog" ] || [ ! -x "$prog" ]; then continue; fi
	case "$prog" in *.d | *.o) continue ;; esac
	found=1
	run "$(basename "$prog")" "$prog"
done
[ "$found" = 1 ] || echo "no programs under $build/bench/ (run make bench)"

for script in "$here"/*.py; do
	[ -f "$script" ] || continue
	if [ ! -x "$python" ]; then
		echo "!! $(basename "$script"): $python not found"
		failed="$failed $(basename "$script")"
		continue
	fi
	run "$(basename "$script")" "$python" "$script"
done
for script in "$here"/cmp_*.sh; do
	[ -f "$script" ] || continue
	run "$(basename "$script")" sh "$script"
done

# get NAME KEY: the value of KEY in the last RESULT line of NAME, or empty.
get() {
	awk -v n="$1" -v k="$2" '$1 == "RESULT" && $2 == n {
		for (i = 3; i <= NF; i++) {
			j = index($i, "=")
			if (substr($i, 1, j - 1) == k) v = substr($i, j + 1)
		}
	} END { print v }' "$results"
}

# minof PREFIX KEY: the smallest KEY over RESULT lines whose name starts
# with PREFIX, or empty.
minof() {
	awk -v p="$1" -v k="$2" '$1 == "RESULT" && index($2, p) == 1 {
		for (i = 3; i <= NF; i++) {
			j = index($i, "=")
			if (substr($i, 1, j - 1) == k &&
			    (v == "" || substr($i, j + 1) + 0 < v + 0))
				v = substr($i, j + 1)
		}
	} END { print v }' "$results"
}

# row LABEL OURS OTHER RATIO TARGET VERDICT
row() { printf '%-30s %12s %12s %9s %10s  %s\n' "$@"; }

# verdict VALUE OP LIMIT: "ok" or "MISSED" (or "-" without a value).
verdict() {
	[ -n "$1" ] || { echo "-"; return; }
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		ok = (op == ">=") ? v >= l : v < l
		print ok ? "ok" : "MISSED"
	}'
}

echo
echo "== summary (load $(load))"
row "measure" "ours" "other" "ratio" "target" ""

bp=$(get dense_bp samples_per_s)
torch=$(get torch_dense samples_per_s)
ratio=""
[ -n "$bp" ] && [ -n "$torch" ] &&
	ratio=$(awk -v a="$bp" -v b="$torch" 'BEGIN { printf "%.2f", a / b }')
row "dense BP samples/s vs torch" "${bp:--}" "${torch:--}" "${ratio:+${ratio}x}" \
	">= 1.5x" "$(verdict "$ratio" ">=" 1.5)"

for policy in default passive; do
	other=$(get "torch_dense_$policy" samples_per_s)
	r=""
	[ -n "$bp" ] && [ -n "$other" ] &&
		r=$(awk -v a="$bp" -v b="$other" 'BEGIN { printf "%.2f", a / b }')
	row "  torch, wait policy $policy" "" "${other:--}" "${r:+${r}x}" "" ""
done

pct=$(get dense_bp pct_sgemm)
row "dense BP GFLOP/s (sgemm)" "$(get dense_bp gflops)" \
	"$(get dense_sgemm gflops)" "${pct:+$pct %}" ">= 60 %" \
	"$(verdict "$pct" ">=" 60)"

for a in fa dfa bdfa; do
	rel=$(get "dense_$a" rel_bp)
	target="-"
	v="-"
	case $a in dfa | bdfa) target="< 1x"; v=$(verdict "$rel" "<" 1) ;; esac
	ms=$(get "dense_$a" step_ms)
	bpms=$(get dense_bp step_ms)
	row "dense $a step time vs BP" "${ms:+$ms ms}" "${bpms:+$bpms ms}" \
		"${rel:+${rel}x}" "$target" "$v"
done

# Other parts' targets, when their benchmarks report them (names as their
# RESULT lines give them; rows stay "-" until a benchmark prints them).
circ=$(minof circulant_b speedup)
row "circulant speedup, worst batch" "${circ:+${circ}x}" "" "" ">= 10x" \
	"$(verdict "$circ" ">=" 10)"
tps=$(get sched_noop trials_per_s)
row "scheduler no-op trials/s" "${tps:--}" "" "" ">= 5000" \
	"$(verdict "$tps" ">=" 5000)"
ovr=$(get sched_vs_parallel overhead_ratio)
row "  overhead vs GNU parallel" "" "" "${ovr:+${ovr}x}" ">= 10x" \
	"$(verdict "$ovr" ">=" 10)"
rps=$(get ingest_metrics rows_per_s)
row "metric ingest rows/s" "${rps:--}" "" "" ">= 300000" \
	"$(verdict "$rps" ">=" 300000)"

sub=$(get submit_trials seconds)
row "100,000-trial submit, seconds" "${sub:--}" "" "" "a few s" \
	"$(verdict "$sub" "<" 5)"

busy=$(awk -v a="$load0" -v b="$(load)" -v n="$(nproc)" \
	'BEGIN { print (a > n / 4 || b > n / 2) ? 1 : 0 }')
[ "$busy" = 1 ] && echo "warning: the machine was busy (load $load0 at the" \
	"start, $(load) now): the step times measure the neighbours too"

echo
echo "== all results"
sed 's/^RESULT //' "$results"

if [ -n "$failed" ]; then
	echo
	echo "failed:$failed"
	exit 1
fi
exit 0
