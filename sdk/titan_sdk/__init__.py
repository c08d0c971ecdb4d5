"""Titan-compatible Python SDK (COMPAT.md, "Python SDK"): ``TitanClient`` and ``TitanJob``."""

from .titan_sdk import TITAN_HOST, TITAN_PORT, TitanClient, TitanJob

__all__ = ["TITAN_HOST", "TITAN_PORT", "TitanClient", "TitanJob"]
