"""The kinds of cgroup host and hierarchy, on their own so that the modules a
hot verb needs (freezer, for a container's status) do not import layout."""

V1, V2, HYBRID = "v1", "v2", "hybrid"
