"""Lost answers in the runbooks, one row per mutating operation: AWS carries the call out and the
answer is lost (a 500 after commit). The run must still complete, with exactly one effect --
the operations AWS gives no idempotency token are settled by reading, never resent -- proved by
reading AWS back with boto3. Every call a run makes must also be allowed by `drkit iam-policy`.

RUNBOOK_MUTATIONS names each mutating operation a runbook action makes and the row (or the
reason) that covers it; `test_every_mutating_runbook_operation_is_named_and_in_the_policy` fails
on a new one until it has both an entry there and a row in drkit.iam_policy.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable

import botocore.session
from botocore import xform_name
from botocore.exceptions import ClientError

from drkit.aws import is_mutating
from drkit.iam_policy import OPERATION_ACTIONS, policy
from drkit.sandbox.faults import armed_faults
from drkit.sandbox.outage import RemoteOutage
from drkit.state import load_state
from tests.runbook_stack import (DR, PRIMARY, client, dns_answers, mutating_calls_of, run, server,  # noqa: F401
                                 stack, writer_region)
from tests.test_iam_policy import unmapped_or_denied

ROOT = Path(__file__).resolve().parents[1]

# (service, API operation) -> the test that loses its answer ("file.py::test"), or why none is needed.
RUNBOOK_MUTATIONS = {
    ("rds", "SwitchoverGlobalCluster"):
        "test_runbooks.py::test_a_lost_switchover_answer_is_settled_by_reading_not_resending",
    ("rds", "FailoverGlobalCluster"): "test_runbooks_faults.py::test_lost_failover_answer_settles_to_one_failover",
    ("rds", "RemoveFromGlobalCluster"):
        "test_runbooks_faults.py::test_lost_detach_answer_when_the_managed_failover_is_refused",
    ("rds", "CopyDBClusterSnapshot"): "test_runbooks_faults.py::test_lost_snapshot_copy_answer_in_failback_keeps_one_copy",
    ("cloudwatch", "PutMetricData"): "test_runbooks_faults.py::test_lost_switch_metric_answer_still_switches_dns",
    # The canary's cleanup: deleting it again deletes nothing more, so the gateway resends it.
    ("dynamodb", "DeleteItem"): "idempotent: not settled, resent",
}


def api_name(service: str, operation: str) -> str:
    """The API name of a boto3 operation (copy_db_cluster_snapshot -> CopyDBClusterSnapshot)."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}[operation]


def refuse(stack: Any, region: str, operation: str, code: str) -> None:
    """AWS refuses `operation` (API name) in `region` with `code`, before doing anything."""
    def refused(**_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "injected: refused"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)

    for resend in (True, False):
        stack.aws.client("rds", region, resend=resend).meta.events.register(
            f"provide-client-params.rds.{operation}", refused)


def fail_over(server: Any, stack: Any, *, before: Callable[[], None] = lambda: None) -> Any:
    """The failover runbook with the primary's region out (its AWS APIs too)."""
    outage = RemoteOutage(server.endpoint_url)
    outage.begin(PRIMARY, aws_apis=True)
    try:
        before()
        return run(stack, "failover")
    finally:
        outage.end(PRIMARY)


def cluster(server: Any, stack: Any, role: str) -> dict[str, Any]:
    region = PRIMARY if role == "primary" else DR
    name = stack.config.names.aurora_cluster(role)
    return client(server, "rds", region).describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]


def switch_alarm_state(server: Any, stack: Any) -> str:
    alarms = client(server, "cloudwatch", DR).describe_alarms(
        AlarmNames=[f"drkit-region-switch-{stack.config.env}"])["MetricAlarms"]
    return str(alarms[0]["StateValue"])


def allowed_on(document: dict[str, Any], action: str, arn: str) -> bool:
    return any(action in s["Action"] and any(fnmatchcase(arn, r) for r in s["Resource"]) for s in document["Statement"])


def test_lost_failover_answer_settles_to_one_failover(server, stack):
    with armed_faults() as faults:
        lost = faults.lost_response("rds", "FailoverGlobalCluster")
        made = mutating_calls_of(stack, lambda: fail_over(server, stack))
    assert lost.fired == 1 and lost.seen == 1  # settled by reading FailoverState, never resent
    assert writer_region(server, stack) == DR
    assert load_state(stack.config).active_role() == "dr"
    assert [c for c in made if c[2] == "remove_from_global_cluster"] == []  # the managed path held
    assert cluster(server, stack, "dr")["GlobalClusterIdentifier"]  # still a member, not detached
    assert_named_and_allowed(stack, made)


def test_lost_detach_answer_when_the_managed_failover_is_refused(server, stack):
    refuse(stack, DR, "FailoverGlobalCluster", "InvalidGlobalClusterStateFault")
    with armed_faults() as faults:
        lost = faults.lost_response("rds", "RemoveFromGlobalCluster")
        made = mutating_calls_of(stack, lambda: fail_over(server, stack))
    assert lost.fired == 1 and lost.seen == 1
    dr = cluster(server, stack, "dr")
    assert not dr.get("GlobalClusterIdentifier") and dr["Status"] == "available"  # detached and promoted
    members = client(server, "rds", DR).describe_global_clusters(
        GlobalClusterIdentifier=stack.config.names.global_cluster)["GlobalClusters"][0]["GlobalClusterMembers"]
    assert dr["DBClusterArn"] not in [m["DBClusterArn"] for m in members]
    assert load_state(stack.config).active_role() == "dr"
    assert_named_and_allowed(stack, made)


def test_lost_switch_metric_answer_still_switches_dns(server, stack):
    with armed_faults() as faults:
        lost = faults.lost_response("cloudwatch", "PutMetricData")
        made = mutating_calls_of(stack, lambda: run(stack, "switchover"))
    assert lost.fired == 1 and lost.seen >= 2  # idempotent: the same value published again
    assert switch_alarm_state(server, stack) == "ALARM" and dns_answers(server, stack) == DR
    assert writer_region(server, stack) == DR
    assert load_state(stack.config).active_role() == "dr"
    assert_named_and_allowed(stack, made)


def test_lost_snapshot_copy_answer_in_failback_keeps_one_copy(server, stack):
    assert fail_over(server, stack).result == "ok"
    with armed_faults() as faults:
        lost = faults.lost_response("rds", "CopyDBClusterSnapshot")
        made = mutating_calls_of(stack, lambda: run(stack, "failback"))
    assert lost.fired == 1 and lost.seen == 1  # settled by reading the copy, never resent
    rds = client(server, "rds", PRIMARY)
    name = stack.config.names.aurora_cluster("primary")
    copies = rds.describe_db_cluster_snapshots(DBClusterIdentifier=name, SnapshotType="manual")["DBClusterSnapshots"]
    assert [c["Status"] for c in copies] == ["available"], copies
    source = rds.describe_db_cluster_snapshots(DBClusterIdentifier=name, SnapshotType="automated")["DBClusterSnapshots"]
    failover_snapshots = [s for s in source if s["DBClusterSnapshotIdentifier"].startswith("rds:unplanned-global-failover-")]
    assert len(failover_snapshots) == 1
    tags = {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(ResourceName=copies[0]["DBClusterSnapshotArn"])["TagList"]}
    assert tags["ManagedBy"] == "drkit" and tags["Environment"] == stack.config.env
    # The policy names both snapshots: the copy's source and the copy itself.
    document = policy(stack.config, copies[0]["DBClusterSnapshotArn"].split(":")[4])
    for arn in (copies[0]["DBClusterSnapshotArn"], failover_snapshots[0]["DBClusterSnapshotArn"]):
        assert allowed_on(document, "rds:CopyDBClusterSnapshot", arn), arn
    assert allowed_on(document, "rds:AddTagsToResource", copies[0]["DBClusterSnapshotArn"])
    assert writer_region(server, stack) == PRIMARY and dns_answers(server, stack) == PRIMARY
    assert load_state(stack.config).active_role() == "primary"
    assert_named_and_allowed(stack, made)


def assert_named_and_allowed(stack: Any, made: list[tuple[str, str, str]]) -> None:
    """What the run really did: each mutating call named above, every call allowed by the policy."""
    mutations = {(service, api_name(service, op)) for service, _, op in made}
    assert sorted(mutations - set(RUNBOOK_MUTATIONS)) == [], "name these in RUNBOOK_MUTATIONS"
    assert unmapped_or_denied(set(stack.aws.stats.by_operation), policy(stack.config)) == []


# Calls written in the runbook modules (and the region switch they use), found in the source.
_LITERAL_CALL = re.compile(r"""\.call\(\s*"(\w+)",\s*[\w.\[\]()"]+,\s*"(\w+)\"""")


def test_every_mutating_runbook_operation_is_named_and_in_the_policy():
    found = set()
    for path in [*ROOT.glob("drkit/runbook/*.py"), ROOT / "drkit" / "region_switch.py"]:
        found |= {(service, op) for service, op in _LITERAL_CALL.findall(path.read_text()) if is_mutating(op)}
    assert {("rds", "copy_db_cluster_snapshot"), ("cloudwatch", "put_metric_data")} <= found
    by_api = {(service, api_name(service, op)): f"{service}.{op}" for service, op in found}
    assert sorted(by_api[k] for k in set(by_api) - set(RUNBOOK_MUTATIONS)) == [], \
        "add a lost-answer test (or the reason none is needed) to RUNBOOK_MUTATIONS"
    assert sorted(f"{s}.{op}" for s, op in found if (s, op) not in OPERATION_ACTIONS) == [], \
        "add these to drkit.iam_policy.OPERATION_ACTIONS"
    assert sorted(set(RUNBOOK_MUTATIONS) - set(by_api)) == [], "RUNBOOK_MUTATIONS names operations no runbook makes"
    for covered_by in RUNBOOK_MUTATIONS.values():
        if "::" in covered_by:  # the named test exists
            module, test = covered_by.split("::")
            assert f"def {test}(" in (ROOT / "tests" / module).read_text(), covered_by
