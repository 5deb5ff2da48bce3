"""Lambda GetAccountSettings, which moto 5.2 does not serve (404).

AWS answers with the Region's limits and usage: AccountLimit.ConcurrentExecutions (default 1,000
per Region) and UnreservedConcurrentExecutions (that minus every function's reserved
concurrency). The switchover gate compares the target region's concurrency with the active one's.
https://docs.aws.amazon.com/lambda/latest/api/API_GetAccountSettings.html
https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html
"""

from __future__ import annotations

import json
from typing import Any

from moto.awslambda import urls as lambda_urls
from moto.awslambda.responses import LambdaResponse

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_lambda_account_settings"
REGION_CONCURRENCY = 1000  # AWS's default concurrent executions quota per Region


def install(timings: SandboxTimings) -> None:
    if getattr(LambdaResponse, _MARK, False):
        return
    setattr(LambdaResponse, _MARK, True)
    lambda_urls.url_paths[r"{0}/(?P<api_version>[^/]+)/account-settings/?$"] = LambdaResponse.dispatch

    def get_account_settings(self: LambdaResponse) -> Any:
        functions = self.backend.list_functions()
        reserved = sum(int(getattr(f, "reserved_concurrency", None) or 0) for f in functions)
        code_size = sum(int(getattr(f, "code_size", 0) or 0) for f in functions)
        body = {
            "AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
                             "ConcurrentExecutions": REGION_CONCURRENCY,
                             "UnreservedConcurrentExecutions": REGION_CONCURRENCY - reserved},
            "AccountUsage": {"TotalCodeSize": code_size, "FunctionCount": len(functions)},
        }
        return 200, {}, json.dumps(body)

    LambdaResponse.get_account_settings = get_account_settings  # type: ignore[attr-defined]
