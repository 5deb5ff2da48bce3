"""Runbooks: switchover, failover, failback and drill, each run journaled step by step."""
