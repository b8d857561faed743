"""dte: the Deep Tree Echo appliance toolchain (build, inspect, run, flash, verify, generate)."""

__version__ = "0.1.0"
