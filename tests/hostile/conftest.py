"""Fixtures of the hostile-input tests: the in-process cluster of ``support/cluster.py``."""

from support.cluster import cluster_fixture, make_cluster_fixture  # noqa: F401
