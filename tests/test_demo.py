"""``nsbox demo``: every experiment shows isolation, and leaves nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from conftest import nsbox, requires_root, sh

TITLES = {
    "uts": "UTS namespace: the hostname",
    "pid": "PID namespace: process ids",
    "mount": "mount namespace: the mount table",
    "ipc": "IPC namespace: System V message queues",
    "net": "network namespace: the interfaces",
    "user": "user namespace: user ids",
    "cgroup": "cgroup namespace: the cgroup a process sees",
    "time": "time namespace: the boot clock",
}


def parse(stdout: str) -> tuple[dict[str, dict], str]:
    """The demo's sections by title (rows as {what: (host, inside)}, the command,
    the verdict line) and its summary line.  Columns are cut where the header
    puts "host" and "inside", since values may hold single spaces."""
    *blocks, summary = stdout.strip().split("\n\n")
    sections = {}
    for block in blocks:
        title, header, *lines = block.splitlines()
        host_col, inside_col = header.index("host"), header.index("inside")
        rows = {}
        for line in lines:
            if line.startswith(("  $ ", "  isolated: ", "  error: ")):
                continue
            rows[line[:host_col].strip()] = (line[host_col:inside_col].strip(), line[inside_col:].strip())
        command = next(line[4:] for line in lines if line.startswith("  $ "))
        verdict = next(line[2:] for line in lines if line.startswith("  isolated: "))
        sections[title] = {"rows": rows, "command": command, "verdict": verdict}
    return sections, summary


def queue_count() -> int:
    out = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, check=True, timeout=10).stdout
    return sum(1 for line in out.splitlines() if line.startswith("0x"))


def processes_mentioning(word: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if word in cmdline and int(pid) != os.getpid():
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.fixture(scope="module")
def demo():
    r = nsbox("demo", timeout=120)
    return r, *parse(r.stdout)


@requires_root
def test_demo_exits_0_and_every_section_shows_a_difference(demo):
    r, sections, summary = demo
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(sections) == list(TITLES.values())
    for title, s in sections.items():
        assert any(host != inside for host, inside in s["rows"].values()), (title, s["rows"])
        assert s["verdict"].startswith("isolated: yes"), (title, s)
        assert s["command"].startswith("nsbox ns unshare "), (title, s)
    assert summary == "8 of 8 experiments showed isolation"


@requires_root
def test_demo_observes_what_each_namespace_is_about(demo):
    _, sections, _ = demo
    rows = {kind: sections[title]["rows"] for kind, title in TITLES.items()}

    assert rows["uts"]["hostname"] == (socket.gethostname(), "nsbox-demo")

    host_pid, inside_pid = rows["pid"]["pid of the shell"]
    assert inside_pid == "1" and int(host_pid) > 1
    host_n, inside_n = map(int, rows["pid"]["processes ps -e lists"])
    assert inside_n == 2 < host_n  # the shell and ps, nothing else

    assert rows["mount"]["tmpfs 'nsbox-demo' mounted on"] == ("absent", "/tmp (tmpfs)")

    (queue, (host, inside)), _ = rows["ipc"].items()
    assert queue.startswith("queue ") and (host, inside) == ("listed", "not listed")

    host_links, inside_links = rows["net"]["interfaces (state)"]
    assert inside_links == "lo DOWN" and "lo" in host_links

    assert rows["user"]["uid (id -u)"] == (str(os.getuid()), "0")
    assert rows["user"]["uid map (inside outside count)"][1] == f"0 {os.getuid()} 1"

    assert rows["cgroup"]["namespace"][0] != rows["cgroup"]["namespace"][1]
    assert all(inside == "/" for what, (_, inside) in rows["cgroup"].items() if what != "namespace")

    host_up, inside_up = (int(v.split()[0]) for v in rows["time"]["uptime (/proc/uptime)"])
    assert abs(inside_up - host_up - 86400) < 60


@requires_root
@pytest.mark.parametrize("kind", [k for k in TITLES if k != "mount"])  # mount's waits for Enter
def test_each_command_shown_can_be_repeated(demo, kind):
    _, sections, _ = demo
    r = sh(sections[TITLES[kind]]["command"])
    assert r.stdout.strip()
    if kind == "uts":
        assert r.stdout.strip() == "nsbox-demo"


@requires_root
def test_only_runs_just_the_experiments_named():
    r = nsbox("demo", "--only", "uts")
    assert r.returncode == 0, r.stderr
    sections, summary = parse(r.stdout)
    assert list(sections) == [TITLES["uts"]]
    assert summary == "1 of 1 experiments showed isolation"

    r = nsbox("demo", "--only", "time,net", "--only", "uts")
    assert r.returncode == 0, r.stderr
    assert list(parse(r.stdout)[0]) == [TITLES["time"], TITLES["net"], TITLES["uts"]]


@pytest.mark.parametrize("args", [["--only", "uts,bogus"], ["--only", ""], ["extra"]])
def test_bad_arguments_give_exit_2_and_one_line(args):
    r = nsbox("demo", *args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith("nsbox: demo: ") and r.stderr.count("\n") == 1, r.stderr


@requires_root
def test_demo_leaves_no_queue_mount_or_process_behind():
    before = queue_count()
    r = nsbox("demo", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert queue_count() == before
    with open("/proc/self/mountinfo") as f:
        assert " nsbox-demo " not in f.read()
    assert processes_mentioning("nsbox-demo") == []


@requires_root
def test_trace_is_passed_on_to_each_experiment():
    r = nsbox("--trace", "demo", "--only", "uts")
    assert r.returncode == 0, r.stderr
    assert 'sethostname("nsbox-demo") = 0' in r.stderr
    assert "$ nsbox --trace ns unshare --uts" in r.stdout


def test_without_root_it_says_so_in_one_line(monkeypatch, capsys):
    from nsbox.cli import demo as cli_demo
    from nsbox.cli.main import main

    monkeypatch.setattr(cli_demo.os, "geteuid", lambda: 1000)
    assert main(["demo"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("nsbox: demo: the demo needs root") and err.count("\n") == 1


# --- reading the tools' output, without the kernel -------------------------

def test_parsers_of_tool_output():
    from nsbox.toolkit import demo as d

    ip = ("1: lo: <LOOPBACK> mtu 65536 qdisc noop state DOWN mode DEFAULT\\    link/loopback 00:00\n"
          "5: veth0@if4: <BROADCAST> mtu 1500 qdisc noqueue state UP mode DEFAULT\\    link/ether ..\n")
    assert d.links(ip) == ["lo DOWN", "veth0 UP"]
    ipcs = ("\n------ Message Queues --------\nkey        msqid      owner\n"
            "0x5e6bcb44 3          root       644        0            0\n")
    assert d.queue_ids(ipcs) == {3}
    assert d.queue_id("Message queue id: 3\n") == 3
    assert d.cgroup_paths(["4:memory:/a/b", "0::/"]) == {"memory": "/a/b", "cgroup2": "/"}
    line = "300 25 0:60 / /tmp rw,relatime shared:1 - tmpfs nsbox-demo rw"
    assert d.mounts_of("nsbox-demo", [line, line.replace("nsbox-demo", "other")]) == ["/tmp (tmpfs)"]
    assert d.duration(87601.48) == "87601 s (1 d 00:20)"
