"""Signals: the driver interface and the drivers (``prometheus``, ``azure_monitor``,
``gcp_monitoring``), and the merge of their readings into a decision's snapshot."""

from drivers.signals.base import SignalsDriver, SourceReading
from drivers.signals.registry import collect_signals, make_signal_drivers

__all__ = ["SignalsDriver", "SourceReading", "collect_signals", "make_signal_drivers"]
