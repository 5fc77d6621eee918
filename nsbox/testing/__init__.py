"""Test doubles and builders: bundles, fake /proc trees."""
