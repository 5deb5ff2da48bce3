"""The stack's outputs, flattened to the seed's names (primary_vpc_id, dr_vpc_id, ...).

`SEED_OUTPUT_KEYS` are the seed's "Expected Outputs": always present (null until built), so a
consumer of `drkit outputs --json` / `--write` never meets a missing key. drkit's own outputs
(health-check ids, topic ARNs, the Aurora global writer endpoint, ...) follow them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from drkit.config import Config

SEED_OUTPUT_KEYS = (
    "environment_suffix", "primary_region", "dr_region", "primary_vpc_id", "dr_vpc_id",
    "primary_aurora_endpoint", "dr_aurora_endpoint", "primary_api_endpoint", "dr_api_endpoint",
    "primary_bucket_name", "dr_bucket_name", "dynamodb_table_name", "route53_zone_id", "route53_fqdn",
    "primary_lambda_function_name", "dr_lambda_function_name",
)


def flat_outputs(config: Config, step_outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`<role>_<name>` for per-region steps, `<name>` for global ones; every seed key present."""
    values: dict[str, Any] = dict.fromkeys(SEED_OUTPUT_KEYS)
    values.update({
        "environment_suffix": config.env,
        "primary_region": config.primary_region,
        "dr_region": config.dr_region,
    })
    for step_key, outputs in sorted(step_outputs.items()):
        role = step_key.split(":", 1)[1] if ":" in step_key else "global"
        for name, value in outputs.items():
            prefixed = role == "global" or name.startswith(f"{role}_")
            values[name if prefixed else f"{role}_{name}"] = value
    return values


def write_flat(path: Path, values: Mapping[str, Any]) -> None:
    """Write `values` as one flat JSON object, atomically (temporary file, fsync, rename): a
    reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(dict(values), out, indent=2, sort_keys=True, default=str)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
