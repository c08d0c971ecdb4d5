"""Shared code of the project_mode example: imported by its jobs from the unpacked project."""
