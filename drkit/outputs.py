"""The stack's outputs, flattened to the seed's names (primary_vpc_id, dr_vpc_id, ...)."""

from __future__ import annotations

from typing import Any, Mapping

from drkit.config import Config


def flat_outputs(config: Config, step_outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`<role>_<name>` for per-region steps, `<name>` for global ones."""
    values: dict[str, Any] = {
        "environment_suffix": config.env,
        "primary_region": config.primary_region,
        "dr_region": config.dr_region,
    }
    for step_key, outputs in sorted(step_outputs.items()):
        role = step_key.split(":", 1)[1] if ":" in step_key else "global"
        for name, value in outputs.items():
            prefixed = role == "global" or name.startswith(f"{role}_")
            values[name if prefixed else f"{role}_{name}"] = value
    return values
