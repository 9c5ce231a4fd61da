"""Tests of sora_nb.widgets, one file per module."""
