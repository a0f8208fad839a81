"""Profiler backends; each module registers one with ``@register_profiler``."""
