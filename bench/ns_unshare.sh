#!/usr/bin/env bash
# nsbox ns unshare vs util-linux unshare(1), side by side, with the Python
# interpreter's own start-up as reference rows.  Prints medians and the ratio
# of medians nsbox / util-linux.  See bench/README.md for how to read it.
#
# Environment: NSBOX (nsbox command), PYTHON (the interpreter nsbox runs on),
# UNSHARE (util-linux unshare), WARMUP, RUNS (per round), ROUNDS, PY3 (the
# python that parses hyperfine's JSON).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
NSBOX=${NSBOX:-$repo/.venv/bin/nsbox}
PYTHON=${PYTHON:-$repo/.venv/bin/python}
UNSHARE=${UNSHARE:-/usr/bin/unshare}
PY3=${PY3:-python3}
WARMUP=${WARMUP:-20}
# Several short rounds instead of one long one: hyperfine runs each command's
# runs back to back, so on a noisy VM a slow minute would land on one command
# only.  Rounds (in alternating order) spread the noise over all rows.
RUNS=${RUNS:-50}
ROUNDS=${ROUNDS:-4}

ARGS=(--fork --pid --mount --uts --ipc --mount-proc /bin/true)

die() { echo "ns_unshare.sh: $*" >&2; exit 1; }

command -v hyperfine >/dev/null || die "hyperfine not found (apt-get install hyperfine)"
command -v "$PY3" >/dev/null || die "$PY3 not found (needed to read hyperfine's JSON)"
[ "$(id -u)" = 0 ] || die "must run as root: both commands create PID and mount namespaces"
[ -x "$NSBOX" ] || die "no nsbox at $NSBOX (set NSBOX=/path/to/nsbox)"
[ -x "$PYTHON" ] || die "no python at $PYTHON (set PYTHON=/path/to/python)"
[ -x "$UNSHARE" ] || die "no util-linux unshare at $UNSHARE (set UNSHARE=...)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Bytecode.  This environment may export PYTHONDONTWRITEBYTECODE=1, and an
# editable install leaves nsbox's .py files uncompiled, so every run would
# compile all of nsbox from source -- a cost no installed copy pays (pip
# compiles at install time).  The main nsbox row therefore runs with a warm
# bytecode cache in a private PYTHONPYCACHEPREFIX (nothing is written to the
# repo); a second row keeps the stdlib's cache but not nsbox's, to show what
# the uncached case costs.  Reference rows run in the warm environment too.
cached=(env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX="$tmp/pyc")
uncached=(env PYTHONDONTWRITEBYTECODE=1 PYTHONPYCACHEPREFIX="$tmp/pyc-no-nsbox")

# One untimed run each: fills the cache, and fails here, in one line, rather
# than in the middle of hyperfine's output.
check() {
    local out
    out=$("$@" 2>&1) || die "this fails, nothing timed: $* -> ${out##*$'\n'}"
}
check "${cached[@]}" "$NSBOX" ns unshare "${ARGS[@]}"
check "${cached[@]}" "$PYTHON" -c pass
check "$UNSHARE" "${ARGS[@]}"
pkgdir=$("${cached[@]}" "$PYTHON" -c 'import nsbox, os; print(os.path.dirname(os.path.abspath(nsbox.__file__)))')
cp -a "$tmp/pyc" "$tmp/pyc-no-nsbox"
rm -rf "$tmp/pyc-no-nsbox$pkgdir"

# label \t command; -N below: commands are exec'd directly, so no shell
# start-up (about 1 ms, half of util-linux's time) is in any row.
main_rows=(
    "nsbox"$'\t'"$NSBOX ns unshare ${ARGS[*]}"
    "util-linux unshare"$'\t'"$UNSHARE ${ARGS[*]}"
    "python -I -S -c pass"$'\t'"$PYTHON -I -S -c pass"
    "python -c pass"$'\t'"$PYTHON -c pass"
    # nsbox leaves with os._exit, skipping interpreter teardown (~2 ms);
    # this is the floor it actually stands on.
    "python, os._exit"$'\t'"$PYTHON -c 'import os; os._exit(0)'"
)
uncached_row="nsbox, no nsbox .pyc"$'\t'"$NSBOX ns unshare ${ARGS[*]}"

run_hyperfine() {  # json-file env-prefix... -- row...
    local json=$1; shift
    local envp=()
    while [ "$1" != -- ]; do envp+=("$1"); shift; done
    shift
    local hf=(hyperfine -N --style none --warmup "$WARMUP" --runs "$RUNS" --export-json "$json")
    local row
    for row in "$@"; do hf+=(-n "${row%%$'\t'*}" "${row#*$'\t'}"); done
    "${envp[@]}" "${hf[@]}" >"$tmp/hyperfine.log" 2>&1 || { cat "$tmp/hyperfine.log" >&2; die "hyperfine failed"; }
}

for ((r = 1; r <= ROUNDS; r++)); do
    echo "round $r/$ROUNDS ..." >&2
    rows=("${main_rows[@]}")
    if ((r % 2 == 0)); then  # reverse the order on even rounds
        rows=(); for ((i = ${#main_rows[@]} - 1; i >= 0; i--)); do rows+=("${main_rows[i]}"); done
    fi
    run_hyperfine "$tmp/r$r-main.json" "${cached[@]}" -- "${rows[@]}"
    run_hyperfine "$tmp/r$r-uncached.json" "${uncached[@]}" -- "$uncached_row"
done

"$PY3" - "$tmp" "$ROUNDS" "$NSBOX ns unshare ${ARGS[*]}" <<'EOF'
import json, os, statistics, sys

tmp, rounds, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
order = ["nsbox", "nsbox, no nsbox .pyc", "util-linux unshare", "python -I -S -c pass", "python -c pass",
         "python, os._exit"]
times = {name: [] for name in order}       # pooled over rounds
per_round = {name: [] for name in order}   # median of each round
commands = {}
for r in range(1, rounds + 1):
    for part in ("main", "uncached"):
        for res in json.load(open(f"{tmp}/r{r}-{part}.json"))["results"]:
            times[res["command"]].extend(res["times"])
            per_round[res["command"]].append(res["median"])

ms = lambda s: s * 1e3
med = {n: statistics.median(t) for n, t in times.items()}
base = med["util-linux unshare"]

print(f"\n{what}")
print(f"{len(times['nsbox'])} runs per row in {rounds} rounds; {os.cpu_count()} CPUs; "
      f"load {open('/proc/loadavg').read().split()[0]}\n")
print(f"{'':24} {'median ms':>9}  {'mean ± stddev ms':>16}  {'min ms':>6}  {'x util-linux':>12}")
for n in order:
    t = times[n]
    print(f"{n:24} {ms(med[n]):9.2f}  {ms(statistics.mean(t)):7.2f} ± {ms(statistics.stdev(t)):6.2f}"
          f"  {ms(min(t)):6.2f}  {med[n] / base:12.2f}")

ratio = med["nsbox"] / base
rounds_text = " ".join(f"{a / b:.1f}" for a, b in zip(per_round["nsbox"], per_round["util-linux unshare"]))
print(f"\nratio of medians nsbox / util-linux: {ratio:.2f}  (per round: {rounds_text})")
print(f"goal <= 3x: {'met' if ratio <= 3 else 'not met'}; the interpreter alone "
      f"(python -I -S -c pass) is {med['python -I -S -c pass'] / base:.1f}x util-linux")
print(f"nsbox beyond its floor (python, os._exit): {ms(med['nsbox'] - med['python, os._exit']):.1f} ms "
      f"(its imports and its work); compiling nsbox from source adds "
      f"{ms(med['nsbox, no nsbox .pyc'] - med['nsbox']):.1f} ms")
EOF
