#!/usr/bin/env bash
# Where the start-up of nsbox ns unshare goes, module by module.
#
# Part 1: `python -X importtime` on the hot path, for both ways of starting
# nsbox (the console script, and `python -m nsbox`), as medians over RUNS
# runs.  Modules that `python -c pass` imports anyway are left out, so what
# remains is what nsbox adds on top of the interpreter floor.
# Part 2 (MARGINAL=0 skips it): the wall time each heavy import costs,
# against a bare interpreter.  -X importtime slows every import down and
# cannot see the process as a whole, so part 1 says *where* and part 2 says
# *how much*.
#
# Environment: NSBOX, PYTHON, RUNS (importtime runs, default 15), TOP (rows
# shown, default 25), MARGINAL (1/0), MARGINAL_RUNS (default 100), MODULES
# (part 2's imports), NOCACHE=1 (compile nsbox from source on every run, as
# happens with PYTHONDONTWRITEBYTECODE=1 and no __pycache__), PY3 (the python
# that parses and times).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
NSBOX=${NSBOX:-$repo/.venv/bin/nsbox}
PYTHON=${PYTHON:-$repo/.venv/bin/python}
PY3=${PY3:-python3}
RUNS=${RUNS:-15}
TOP=${TOP:-25}
MARGINAL=${MARGINAL:-1}
MARGINAL_RUNS=${MARGINAL_RUNS:-100}
NOCACHE=${NOCACHE:-0}
MODULES=${MODULES:-"re enum signal ctypes fcntl nsbox.cli.main nsbox._sys.mount nsbox.toolkit.launch nsbox.cli.ns_unshare"}

ARGS=(ns unshare --fork --pid --mount --uts --ipc --mount-proc /bin/true)

die() { echo "importtime.sh: $*" >&2; exit 1; }
# Absolute, because the runs below happen from /; symlinks are kept (a
# venv's python is one, and resolving it would leave the venv).
abspath() { case $1 in /*) echo "$1" ;; */*) echo "$PWD/$1" ;; *) command -v "$1" || echo "$1" ;; esac; }
NSBOX=$(abspath "$NSBOX")
PYTHON=$(abspath "$PYTHON")
command -v "$PY3" >/dev/null || die "$PY3 not found"
[ "$(id -u)" = 0 ] || die "must run as root: the measured command creates PID and mount namespaces"
[ -x "$NSBOX" ] || die "no nsbox at $NSBOX (set NSBOX=/path/to/nsbox)"
[ -x "$PYTHON" ] || die "no python at $PYTHON (set PYTHON=/path/to/python)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Same bytecode policy as ns_unshare.sh (see the comment there): a warm
# private cache, so the numbers are those of an installed nsbox rather than
# of compiling it; with NOCACHE=1 the cache keeps the stdlib but not nsbox.
pyenv=(env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX="$tmp/pyc")
out=$("${pyenv[@]}" "$NSBOX" "${ARGS[@]}" 2>&1) || die "this fails: $NSBOX ${ARGS[*]} -> ${out##*$'\n'}"
"${pyenv[@]}" "$PYTHON" -c pass
if [ "$NOCACHE" = 1 ]; then
    pkgdir=$("${pyenv[@]}" "$PYTHON" -c 'import nsbox, os; print(os.path.dirname(os.path.abspath(nsbox.__file__)))')
    rm -rf "$tmp/pyc$pkgdir"
    pyenv=(env PYTHONDONTWRITEBYTECODE=1 PYTHONPYCACHEPREFIX="$tmp/pyc")
fi
# -c puts the current directory first on sys.path; from / nothing shadows.
cd /

# The console script runs as itself (its shebang, its sys.path[0]), so
# importtime is switched on by environment rather than by -X.
for ((i = 0; i < RUNS; i++)); do
    "${pyenv[@]}" PYTHONPROFILEIMPORTTIME=1 "$NSBOX" "${ARGS[@]}" 2>>"$tmp/script.txt" >/dev/null \
        || die "failed: $NSBOX ${ARGS[*]}: $(tail -n 1 "$tmp/script.txt")"
    "${pyenv[@]}" "$PYTHON" -X importtime -m nsbox "${ARGS[@]}" 2>>"$tmp/dash-m.txt" >/dev/null \
        || die "failed: $PYTHON -m nsbox ${ARGS[*]}: $(tail -n 1 "$tmp/dash-m.txt")"
    "${pyenv[@]}" "$PYTHON" -X importtime -c pass 2>>"$tmp/floor.txt" || die "failed: $PYTHON -c pass"
done

"$PY3" - "$tmp" "$RUNS" "$TOP" "$NSBOX" <<'EOF'
import re, statistics, sys
from collections import defaultdict

tmp, runs, top, nsbox = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")

def load(name):
    """Per module: median self and cumulative us, depth, and its importer.
    importtime prints a module's own imports before the module, one level
    deeper, so a module's importer is the next line at a lower depth."""
    selfs, cums, info = defaultdict(list), defaultdict(list), {}
    run = []
    def flush():
        for i, (s, c, depth, mod) in enumerate(run):
            parent = next((m for _, _, d, m in run[i + 1:] if d < depth), "top level")
            selfs[mod].append(s)
            cums[mod].append(c)
            info.setdefault(mod, (depth, parent))
        run.clear()
    for line in open(f"{tmp}/{name}.txt"):
        if line.startswith("import time: self"):  # a new run starts
            flush()
        m = LINE.match(line)
        if m:
            run.append((int(m[1]), int(m[2]), len(m[3]) // 2, m[4]))
    flush()
    return {mod: (statistics.median(selfs[mod]), statistics.median(cums[mod])) + info[mod] for mod in selfs}

floor = load("floor")
print(f"-X importtime, median of {runs} runs, in microseconds (inflated by importtime's own overhead)")
print(f"`python -c pass` imports {len(floor)} modules in {sum(v[0] for v in floor.values()) / 1e3:.1f} ms;"
      " those are left out below\n")
for name, title in (("script", f"console script: {nsbox} ns unshare ..."),
                    ("dash-m", "python -m nsbox ns unshare ...")):
    extra = {m: v for m, v in load(name).items() if m not in floor}
    print(f"== {title}")
    print(f"   {len(extra)} modules beyond the floor, {sum(v[0] for v in extra.values()) / 1e3:.1f} ms of self time\n")
    print(f"   {'cumul us':>8}  {'self us':>7}  module (imported by)")
    for mod, (s, c, depth, parent) in sorted(extra.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"   {c:8.0f}  {s:7.0f}  {'  ' * min(depth, 6)}{mod}  ({parent})")
    print()
EOF

[ "$MARGINAL" = 1 ] || exit 0

# Each import is timed against `import os` (already loaded by site, so that
# row is the bare interpreter) and followed by os._exit, as nsbox's entry()
# does, so interpreter teardown is out of both sides.  Costs are inclusive
# (`signal` includes enum).  The last rows are whole nsbox runs: minus
# `import nsbox.cli.ns_unshare` they leave what nsbox spends working
# (parsing, syscalls, fork, exec, wait) rather than importing.
#
# Not hyperfine: the differences are 0.2-5 ms on ~12 ms with a stddev of
# ~2 ms on this VM, and hyperfine runs one command's runs back to back, so a
# noisy minute lands on one row.  This loop takes one sample of every row in
# turn, alternating the order, so noise lands on all rows alike.
for m in $MODULES; do
    "${pyenv[@]}" "$PYTHON" -c "import $m" || die "cannot import $m"
done
echo "timing the imports: $MARGINAL_RUNS interleaved runs per row ..." >&2
"${pyenv[@]}" "$PY3" - "$PYTHON" "$NSBOX" "$MARGINAL_RUNS" "${ARGS[*]}" $MODULES <<'EOF'
import os, statistics, sys, time

python, nsbox, runs, args, modules = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(), sys.argv[5:]
rows = [("(baseline) python -c 'import os'", [python, "-c", "import os; os._exit(0)"]),
        ("(without site) python -I -S -c 'import os'", [python, "-I", "-S", "-c", "import os; os._exit(0)"])]
rows += [(f"import {m}", [python, "-c", f"import os, {m}; os._exit(0)"]) for m in modules]
rows += [(f"nsbox {' '.join(args)}", [nsbox, *args]),
         (f"python -m nsbox {' '.join(args[:2])} ...", [python, "-m", "nsbox", *args])]

def once(argv):
    t = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit(f"importtime.sh: exit status {status}: {' '.join(argv)}")
    return time.perf_counter() - t

WARMUP = 5
samples = [[] for _ in rows]
for i in range(WARMUP + runs):
    for k in (range(len(rows)) if i % 2 else reversed(range(len(rows)))):
        t = once(rows[k][1])
        if i >= WARMUP:
            samples[k].append(t)
base = statistics.median(samples[0])
print(f"== wall time, median of {runs} interleaved runs per row; second column: over the baseline")
for (label, _), t in zip(rows, samples):
    m = statistics.median(t)
    print(f"   {m * 1e3:6.2f} ms  {(m - base) * 1e3:+6.2f} ms  {label}")
EOF
