"""Fixtures of the layer-3 tests: an in-process cluster (``support/cluster.py``)."""

from support.cluster import cluster_fixture, make_cluster_fixture  # noqa: F401
