#!/usr/bin/env bash
# nsbox as an OCI runtime next to runc and crun, side by side in one run, on
# the same bundle (busybox rootfs, nsbox's default spec, /bin/true):
#   run:                  RUNTIME run --bundle B ID
#   create+start+delete:  sh -c 'RUNTIME create ...; RUNTIME start ID; RUNTIME delete --force ID'
#   exec:                 RUNTIME exec ID /bin/true, into a container each runtime keeps running
# Prints medians and the ratios nsbox/runc and nsbox/crun.  See
# bench/README.md for how to read it.
#
# Environment: NSBOX, PYTHON (the interpreter nsbox runs on), RUNC, CRUN,
# WARMUP, RUNS (per row and round), ROUNDS, PY3 (the python that parses
# hyperfine's JSON).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")
repo=$(dirname "$here")
NSBOX=${NSBOX:-$repo/.venv/bin/nsbox}
PYTHON=${PYTHON:-$repo/.venv/bin/python}
RUNC=${RUNC:-$(command -v runc || echo runc)}
CRUN=${CRUN:-$(command -v crun || echo crun)}
PY3=${PY3:-python3}
WARMUP=${WARMUP:-5}
RUNS=${RUNS:-30}
ROUNDS=${ROUNDS:-4}

die() { echo "runtime.sh: $*" >&2; exit 1; }

command -v hyperfine >/dev/null || die "hyperfine not found (apt-get install hyperfine)"
command -v "$PY3" >/dev/null || die "$PY3 not found (needed to read hyperfine's JSON)"
command -v unshare >/dev/null && command -v findmnt >/dev/null || die "unshare and findmnt (util-linux) are needed"
[ "$(id -u)" = 0 ] || die "must run as root: the runtimes create namespaces and cgroups"
[ -x "$NSBOX" ] || die "no nsbox at $NSBOX (set NSBOX=/path/to/nsbox)"
[ -x "$PYTHON" ] || die "no python at $PYTHON (set PYTHON=/path/to/python)"
[ -x "$RUNC" ] || die "no runc at $RUNC (apt-get install runc, or set RUNC=...)"
[ -x "$CRUN" ] || die "no crun at $CRUN (apt-get install crun, or set CRUN=...)"

# Everything runs in a private mount namespace of its own, all three
# runtimes alike.  crun refuses a hybrid cgroup host ("cgroups in hybrid mode
# not supported"), so there the cgroup2 mount at /sys/fs/cgroup/unified is
# replaced, in this namespace only, by an empty tmpfs: every runtime then sees
# a plain cgroup v1 host.  (A tmpfs rather than nothing because crun writes a
# cgroup.procs file under unified/<id> even on v1, and it must not land in the
# host's /sys/fs/cgroup tmpfs; ours vanishes with the namespace.)
if [ "${_NSBOX_BENCH_INNER:-}" != 1 ]; then
    exec env _NSBOX_BENCH_INNER=1 unshare --mount --propagation private -- "$BASH" "$self" "$@"
fi
hybrid=0
if [ "$(findmnt -n -o FSTYPE --mountpoint /sys/fs/cgroup || true)" = tmpfs ] &&
    [ "$(findmnt -n -o FSTYPE --mountpoint /sys/fs/cgroup/unified || true)" = cgroup2 ]; then
    umount /sys/fs/cgroup/unified
    mount -t tmpfs -o size=64k,mode=755 nsbox-bench /sys/fs/cgroup/unified
    hybrid=1
fi

tmp=$(mktemp -d /tmp/nsbox-bench.XXXXXX)
prefix=nsbench$$            # every container id (and so every cgroup) starts with this
B=$tmp/bundle
declare -A root=([nsbox]=$tmp/root-nsbox [runc]=$tmp/root-runc [crun]=$tmp/root-crun [crun-nocg]=$tmp/root-crun-nocg)
declare -A rt=([nsbox]="$NSBOX" [runc]="$RUNC" [crun]="$CRUN" [crun-nocg]="$CRUN --cgroup-manager=disabled")

cleanup() {
    local status=$? k id left
    set +e
    for k in "${!rt[@]}"; do
        for id in "$prefix-run" "$prefix-life" "$prefix-check" "$prefix-exec"; do
            ${rt[$k]} --root "${root[$k]}" delete --force "$id" >/dev/null 2>&1
        done
    done
    # cgroups the runtimes made (/sys/fs/cgroup/<controller>/<id>, nsbox-<id> for nsbox, or under
    # our own nested cgroup); the private tmpfs at unified goes by itself
    find /sys/fs/cgroup -path /sys/fs/cgroup/unified -prune -o -depth -type d \( -name "$prefix-*" -o -name "nsbox-$prefix-*" \) \
        -exec rmdir {} + 2>/dev/null
    left=$(find /sys/fs/cgroup -path /sys/fs/cgroup/unified -prune -o \( -name "$prefix-*" -o -name "nsbox-$prefix-*" \) -print 2>/dev/null)
    [ -z "$left" ] || echo "runtime.sh: warning: cgroups left behind: $left" >&2
    awk -v t="$tmp" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r umount -l
    rm -rf --one-file-system "$tmp"
    exit "$status"
}
hf_pid=
trap cleanup EXIT
trap 'echo "runtime.sh: interrupted" >&2; [ -z "$hf_pid" ] || kill "$hf_pid" 2>/dev/null; wait; exit 130' INT TERM

# Same bytecode policy as ns_unshare.sh: a warm private cache, so nsbox is
# measured as installed (pip compiles at install time) even where
# PYTHONDONTWRITEBYTECODE=1 is exported; nothing is written to the repo.
pyenv=(env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX="$tmp/pyc")

# The bundle.  ociVersion 1.0.2: crun 1.8 (Debian 12) refuses any other
# ("unknown version specified"), and nsbox's default spec says 1.2.0.
# A second bundle, sharing the rootfs, proves each runtime really runs the
# container: its sh exits 7 only as PID 1 with the spec's hostname.
"${pyenv[@]}" "$PYTHON" - "$tmp" <<'EOF' || die "cannot build the bundle with nsbox.testing.bundle"
import sys
from nsbox.testing.bundle import make_bundle
tmp = sys.argv[1]
make_bundle(f"{tmp}/bundle", args=["/bin/true"], ociVersion="1.0.2")
make_bundle(f"{tmp}/check", rootfs=f"{tmp}/bundle/rootfs", ociVersion="1.0.2",
            args=["/bin/sh", "-c", '[ "$(hostname)" = nsbox ] && [ $$ = 1 ] && exit 7'])
make_bundle(f"{tmp}/long", rootfs=f"{tmp}/bundle/rootfs", ociVersion="1.0.2", args=["sleep", "3600"])
EOF

# label \t command, for hyperfine -N (no shell of hyperfine's own).
declare -A cmd
for k in nsbox runc crun crun-nocg; do
    r="${rt[$k]} --root ${root[$k]}"
    cmd[$k-run]="$r run --bundle $B $prefix-run"
    # The same three verbs for every runtime.  start returns once the
    # container's process is let go; /bin/true may or may not have exited
    # when delete looks, so --force (kill if still running) keeps every run
    # to these three commands.  The failure branch only keeps one failed
    # run from failing every later one (the id would still exist).
    cmd[$k-life]="sh -c '$r create --bundle $B $prefix-life || exit 1; $r start $prefix-life || { $r delete --force $prefix-life; exit 1; }; $r delete --force $prefix-life'"
    cmd[$k-exec]="$r exec $prefix-exec /bin/true"
done
# The floors: what one process costs before it does any work.  The python
# row runs the interpreter as nsbox's launcher does (-S -P), and os._exit
# skips the teardown, as nsbox's verbs do; crun --version stands for crun's
# own start (exec, dynamic linking, exit).
pyfloor="$PYTHON -S -P -c \"import os; os._exit(0)\""
rows=(
    "nsbox run"$'\t'"${cmd[nsbox-run]}"
    "runc run"$'\t'"${cmd[runc-run]}"
    "crun run"$'\t'"${cmd[crun-run]}"
    "crun run, no cgroups"$'\t'"${cmd[crun-nocg-run]}"
    "python, os._exit"$'\t'"$PYTHON -S -P -c 'import os; os._exit(0)'"
    "crun --version"$'\t'"${rt[crun]} --version"
    "nsbox c+s+d"$'\t'"${cmd[nsbox-life]}"
    "runc c+s+d"$'\t'"${cmd[runc-life]}"
    "crun c+s+d"$'\t'"${cmd[crun-life]}"
    "crun c+s+d, no cgroups"$'\t'"${cmd[crun-nocg-life]}"
    "sh + 3 x /bin/true"$'\t'"sh -c '/bin/true; /bin/true; /bin/true'"
    "sh + 3 x python"$'\t'"sh -c '$pyfloor; $pyfloor; $pyfloor'"
    "sh + 3 x crun --version"$'\t'"sh -c '${rt[crun]} --version; ${rt[crun]} --version; ${rt[crun]} --version'"
    "nsbox exec"$'\t'"${cmd[nsbox-exec]}"
    "runc exec"$'\t'"${cmd[runc-exec]}"
    "crun exec"$'\t'"${cmd[crun-exec]}"
)

# Untimed: each runtime must really run the container (exit 7 from the check
# bundle), and each timed command must succeed once and leave no container
# behind.  This also fills the bytecode cache.
for k in nsbox runc crun crun-nocg; do
    set +e
    out=$("${pyenv[@]}" ${rt[$k]} --root "${root[$k]}" run --bundle "$tmp/check" "$prefix-check" 2>&1)
    got=$?
    set -e
    [ "$got" = 7 ] || die "$k does not run the container here (the check exited $got, not 7): ${out##*$'\n'}"
done
# the exec rows' containers, running for the whole benchmark (cleanup deletes them)
for k in nsbox runc crun; do
    "${pyenv[@]}" ${rt[$k]} --root "${root[$k]}" run --detach --bundle "$tmp/long" "$prefix-exec" \
        </dev/null >/dev/null 2>&1 || die "$k cannot start the exec rows' container"
done
for row in "${rows[@]}"; do
    eval "set -- ${row#*$'\t'}"
    out=$("${pyenv[@]}" "$@" 2>&1) || die "this fails, nothing timed: ${row#*$'\t'} -> ${out##*$'\n'}"
done
for k in nsbox runc crun crun-nocg; do
    left=$(${rt[$k]} --root "${root[$k]}" list -q 2>/dev/null | grep -vx "$prefix-exec" || true)
    [ -z "$left" ] || die "$k left containers behind after one run: $left"
done

for ((r = 1; r <= ROUNDS; r++)); do
    echo "round $r/$ROUNDS ..." >&2
    order=("${rows[@]}")
    if ((r % 2 == 0)); then  # reverse the order on even rounds
        order=(); for ((i = ${#rows[@]} - 1; i >= 0; i--)); do order+=("${rows[i]}"); done
    fi
    # -i: a run that fails (a lost race in a handshake, say) is counted and
    # left out of the times, rather than ending the whole benchmark.
    hf=(hyperfine -N -i --style none --warmup "$WARMUP" --runs "$RUNS" --export-json "$tmp/r$r.json")
    for row in "${order[@]}"; do hf+=(-n "${row%%$'\t'*}" "${row#*$'\t'}"); done
    # In the background and waited for: with -i hyperfine takes Ctrl-C as
    # one failed run and goes on, and bash runs no trap during a foreground
    # command.  A trapped signal does interrupt `wait`.
    "${pyenv[@]}" "${hf[@]}" >"$tmp/hyperfine.log" 2>&1 &
    hf_pid=$!
    wait "$hf_pid" || { cat "$tmp/hyperfine.log" >&2; die "hyperfine failed"; }
    hf_pid=
done

"$PY3" - "$tmp" "$ROUNDS" "$RUNS" "$hybrid" <<'EOF'
import json, os, statistics, sys

tmp, rounds, runs, hybrid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
times, per_round, failed = {}, {}, {}
for r in range(1, rounds + 1):
    for res in json.load(open(f"{tmp}/r{r}.json"))["results"]:
        name = res["command"]
        ok = [t for t, code in zip(res["times"], res["exit_codes"]) if code == 0]
        times.setdefault(name, []).extend(ok)
        failed[name] = failed.get(name, 0) + len(res["times"]) - len(ok)
        per_round.setdefault(name, []).append(statistics.median(ok) if ok else float("nan"))

ms = lambda s: s * 1e3
med = {n: statistics.median(t) if t else float("nan") for n, t in times.items()}
print(f"\n{runs} runs per row in each of {rounds} rounds; {os.cpu_count()} CPUs; "
      f"load {open('/proc/loadavg').read().split()[0]}; one bundle for all (busybox, /bin/true)")
print("cgroup host as the runtimes see it: " + ("hybrid, shown as v1 in a private mount namespace"
                                                 if hybrid else "unchanged"))


def section(title, rows, nsbox, runc, crun, floor, floor_note, floors=None):
    print(f"\n{title}")
    print(f"{'':24} {'median ms':>9}  {'mean ± stddev ms':>16}  {'min ms':>6}  {'x runc':>6}  {'failed':>6}")
    for n in rows:
        t = times[n]
        mean = statistics.mean(t) if t else float("nan")
        sd = statistics.stdev(t) if len(t) > 1 else float("nan")
        print(f"{n:24} {ms(med[n]):9.2f}  {ms(mean):7.2f} ± {ms(sd):6.2f}  {ms(min(t)) if t else 0:6.2f}"
              f"  {med[n] / med[runc]:6.2f}  {failed[n]:6d}")
    for peer, goal, word in ((runc, 1.0, "< 1 (faster than runc)"), (crun, 1.3, "<= 1.3")):
        ratio = med[nsbox] / med[peer]
        each = " ".join(f"{a / b:.2f}" for a, b in zip(per_round[nsbox], per_round[peer]))
        met = ratio < goal if goal == 1.0 else ratio <= goal
        print(f"nsbox / {peer.split()[0]}: {ratio:.2f}  (per round: {each})  goal {word}: "
              f"{'met' if met else 'not met'}")
    if floor.startswith("python"):
        print(f"{floor_note}: {ms(med[floor]):.1f} ms of nsbox's {ms(med[nsbox]):.1f}; "
              f"nsbox beyond it: {ms(med[nsbox] - med[floor]):.1f} ms (imports and work)")
    else:
        print(f"{floor_note}: {ms(med[floor]):.1f} ms in every row; without it nsbox / runc "
              f"{(med[nsbox] - med[floor]) / (med[runc] - med[floor]):.2f}, nsbox / crun "
              f"{(med[nsbox] - med[floor]) / (med[crun] - med[floor]):.2f}")
    if floors:
        # crun's row with crun's process starts swapped for the interpreter's:
        # what nsbox would take if its own work were exactly as fast as crun's.
        crun_floor, python_floor = floors
        bound = med[crun] - med[crun_floor] + med[python_floor]
        print(f"crun's work on nsbox's floor ({crun_floor!r} swapped for {python_floor!r}): "
              f"{ms(bound):.1f} ms, x crun {bound / med[crun]:.2f}; the crun goal needs nsbox's work "
              f"{'no slower' if bound <= 1.3 * med[crun] else 'faster'} than crun's")


section("run --bundle B ID  (create, start, wait for /bin/true, delete: one command)",
        ["nsbox run", "runc run", "crun run", "crun run, no cgroups", "python, os._exit", "crun --version"],
        "nsbox run", "runc run", "crun run", "python, os._exit", "the interpreter floor (python, os._exit)",
        ("crun --version", "python, os._exit"))
section("create + start + delete --force  (three commands from one sh -c)",
        ["nsbox c+s+d", "runc c+s+d", "crun c+s+d", "crun c+s+d, no cgroups", "sh + 3 x /bin/true",
         "sh + 3 x python", "sh + 3 x crun --version"],
        "nsbox c+s+d", "runc c+s+d", "crun c+s+d", "sh + 3 x /bin/true",
        "the wrapper (sh + three fork/exec)", ("sh + 3 x crun --version", "sh + 3 x python"))
section("exec ID /bin/true  (into a running container)",
        ["nsbox exec", "runc exec", "crun exec", "python, os._exit"],
        "nsbox exec", "runc exec", "crun exec", "python, os._exit", "the interpreter floor (python, os._exit)")
bad = {n: f for n, f in failed.items() if f}
if bad:
    print("\nFAILED runs (left out of the times; each one is a bug): "
          + ", ".join(f"{n} {f}" for n, f in bad.items()))
print("\nnote: nsbox, runc and crun each make the container's cgroups (one per v1 hierarchy here);"
      "\nthe 'no cgroups' rows (crun --cgroup-manager=disabled) show what that work costs.")
EOF
