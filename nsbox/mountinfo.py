"""/proc/PID/mountinfo, parsed: the one source of truth about what is
mounted where (cgroup hierarchies included: never guess their paths).

Fields are escaped by the kernel: space, tab, newline and backslash appear
as ``\\ooo`` octal sequences.
"""

from __future__ import annotations


class MountInfo:
    """One line of /proc/PID/mountinfo."""

    __slots__ = ("mount_id", "parent_id", "root", "mountpoint", "options", "fstype", "source", "super_options")

    def __init__(self, line: str) -> None:
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        self.mount_id = int(f[0])
        self.parent_id = int(f[1])
        self.root = unescape(f[3])
        self.mountpoint = unescape(f[4])
        self.options = f[5]
        self.fstype = r[0] if r else ""
        self.source = unescape(r[1]) if len(r) > 1 else ""
        self.super_options = r[2] if len(r) > 2 else ""


def unescape(s: str) -> str:
    """Undo the kernel's \\ooo escapes."""
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and s[i + 1:i + 4].isdigit() and len(s[i + 1:i + 4]) == 3:
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountInfo]:
    return [MountInfo(line) for line in text.splitlines() if line.strip()]
