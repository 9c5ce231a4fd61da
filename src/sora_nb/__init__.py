"""sora_nb: live AI video generation in Jupyter notebooks."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
