"""Rebuild phases: one module each, run in order by drtool.pipeline."""
