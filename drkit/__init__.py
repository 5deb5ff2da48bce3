"""drkit: build, verify, tear down and operate multi-region AWS disaster-recovery infrastructure."""

__version__ = "0.1.0"
