from __future__ import annotations

import json
import re

import click

from drkit.cli.common import common_options, reports_errors
from drkit.errors import UserInputError


@click.command("iam-policy")
@click.option("--json", "as_json", is_flag=True, default=True, show_default=True,
              help="Print the policy as one JSON document (the only format today).")
@click.option("--account-id", default="*", show_default=True,
              help="The 12-digit AWS account to scope every ARN to ('*': any account).")
@common_options
@reports_errors
def iam_policy(settings, as_json, account_id):
    """Print the least-privilege IAM policy to run drkit for this env and regions. No AWS call.

    It allows exactly the calls plan, provision, verify (with --deep) and teardown make, on
    drkit's own resources: by name, by drkit's tags where AWS names them by id (EC2), and on
    "*" only for the actions AWS authorizes on no resource (e.g. ec2:Describe*).
    """
    from drkit.iam_policy import policy

    if account_id != "*" and not re.fullmatch(r"\d{12}", account_id):
        raise UserInputError(f"--account-id {account_id!r} must be 12 digits (or '*')")
    click.echo(json.dumps(policy(settings.config(), account_id), indent=2))
