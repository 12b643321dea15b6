"""Probes: measurements of how tasks relate, each returning an :class:`~taskrel.Affinity`."""

from taskrel.probes.base import ProbeSettings, single_task_specs

__all__ = ["ProbeSettings", "single_task_specs"]
