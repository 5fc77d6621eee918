"""The launch protocol: how a parent and the children it forks talk."""
