"""Titan Actors: a distributed execution runtime on gevent actors."""

__version__ = "0.1.0"
