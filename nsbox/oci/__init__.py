"""The OCI runtime spec: config.json (spec.py), the state document (state.py),
and the features document (features.py)."""
