"""The container's security boundary: capabilities (and, with issue 5, seccomp)."""
