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
@click.option("--split", "split_up", is_flag=True, default=False,
              help="Print a JSON list of managed policies ({PolicyName, PolicyDocument}), each within IAM's "
                   "6,144 characters, together allowing exactly what the one document allows.")
@common_options
@reports_errors
def iam_policy(settings, as_json, account_id, split_up):
    """Print the least-privilege IAM policy to run drkit for this env and regions. No AWS call.

    It allows exactly the calls plan, provision, verify (with --deep), teardown and the runbooks
    make, on drkit's own resources: by name, by drkit's tags where AWS names them by id (EC2),
    and on "*" only for the actions AWS authorizes on no resource (e.g. ec2:Describe*).
    """
    from drkit.iam_policy import policy
    from drkit.iam_policy_split import named_parts

    if account_id != "*" and not re.fullmatch(r"\d{12}", account_id):
        raise UserInputError(f"--account-id {account_id!r} must be 12 digits (or '*')")
    config = settings.config()
    document = policy(config, account_id)
    click.echo(json.dumps(named_parts(document, config.env) if split_up else document, indent=2))
