"""Contract tests: Route 53 health checks are evaluated, failover answers follow them, and
CreateHealthCheck honours CallerReference; CloudWatch alarms are evaluated and notify SNS; the
regional outage switch fails a region's APIs. Each test names the AWS page it follows.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile

import boto3
import pytest
from botocore.exceptions import ClientError

from drkit.sandbox import SandboxServer
from drkit.sandbox.outage import RemoteOutage, active_outages

PRIMARY, DR = "us-east-1", "us-east-2"
ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
HEALTH = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"


@pytest.fixture(autouse=True)
def no_outage():
    active_outages().end()
    yield
    active_outages().end()


def zipped(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("health.py", source)
    return buffer.getvalue()


def deployed_api(region: str) -> str:
    """A REST API whose GET /health answers 200, deployed to prod: its execute-api host."""
    lam, apigw = boto3.client("lambda", region_name=region), boto3.client("apigateway", region_name=region)
    role = boto3.client("iam").create_role(RoleName=f"health-{region}", AssumeRolePolicyDocument=ROLE_POLICY)
    fn = lam.create_function(FunctionName="health", Runtime="python3.12", Role=role["Role"]["Arn"],
                             Handler="health.handler", Code={"ZipFile": zipped(HEALTH)})["FunctionArn"]
    api = apigw.create_rest_api(name="p", endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    health = apigw.create_resource(restApiId=api, parentId=root, pathPart="health")["id"]
    apigw.put_method(restApiId=api, resourceId=health, httpMethod="GET", authorizationType="NONE")
    apigw.put_integration(restApiId=api, resourceId=health, httpMethod="GET", type="AWS_PROXY",
                          integrationHttpMethod="POST",
                          uri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{fn}/invocations")
    apigw.create_deployment(restApiId=api, stageName="prod")
    lam.add_permission(FunctionName="health", StatementId="apigw", Action="lambda:InvokeFunction",
                       Principal="apigateway.amazonaws.com",
                       SourceArn=f"arn:aws:execute-api:{region}:123456789012:{api}/*/GET/health")
    return f"{api}.execute-api.{region}.amazonaws.com"


def https_check(route53, host: str, reference: str, **extra) -> str:
    config = {"Type": "HTTPS", "FullyQualifiedDomainName": host, "ResourcePath": "/prod/health", "Port": 443,
              "RequestInterval": 30, "FailureThreshold": 3, "EnableSNI": True, **extra}
    return route53.create_health_check(CallerReference=reference, HealthCheckConfig=config)["HealthCheck"]["Id"]


def status(route53, check_id: str) -> str:
    return route53.get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"][0]["StatusReport"]["Status"]


def test_caller_reference_is_idempotent_and_never_reused(aws):
    """API_CreateHealthCheck: same reference and settings -> the same check; other settings, or
    the reference of a deleted check -> HealthCheckAlreadyExists."""
    route53 = boto3.client("route53")
    first = https_check(route53, "a.example.com", "ref-1")
    assert https_check(route53, "a.example.com", "ref-1") == first
    assert len(route53.list_health_checks()["HealthChecks"]) == 1
    with pytest.raises(ClientError) as other:
        https_check(route53, "b.example.com", "ref-1")
    assert other.value.response["Error"]["Code"] == "HealthCheckAlreadyExists"
    route53.delete_health_check(HealthCheckId=first)
    with pytest.raises(ClientError) as deleted:
        https_check(route53, "a.example.com", "ref-1")
    assert deleted.value.response["Error"]["Code"] == "HealthCheckAlreadyExists"


def test_https_check_fails_after_the_threshold_during_an_outage(aws):
    """dns-failover-determining-health-of-endpoints: a status changes after FailureThreshold
    consecutive results; an impaired region's endpoint fails every request."""
    route53 = boto3.client("route53")
    check = https_check(route53, deployed_api(PRIMARY), "ref-https", Regions=["us-east-1", "us-west-2", "eu-west-1"])
    assert status(route53, check).startswith("Success: HTTP Status Code 200")
    assert len(route53.get_health_check_status(HealthCheckId=check)["HealthCheckObservations"]) == 3
    active_outages().begin(PRIMARY)
    zone = route53.create_hosted_zone(Name="z.example.com", CallerReference="z")["HostedZone"]["Id"]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "CREATE",
        "ResourceRecordSet": {"Name": "x.z.example.com", "Type": "A", "SetIdentifier": "p", "Failover": "PRIMARY",
                              "TTL": 60, "ResourceRecords": [{"Value": "10.0.0.1"}], "HealthCheckId": check}}]})
    answers = [route53.test_dns_answer(HostedZoneId=zone, RecordName="x.z.example.com", RecordType="A")["RecordData"]
               for _ in range(2)]
    assert status(route53, check).startswith("Failure")  # the third failed round
    assert answers == [["10.0.0.1"], ["10.0.0.1"]]  # a lone PRIMARY is answered whatever its health
    active_outages().end(PRIMARY)
    for _ in range(2):
        status(route53, check)
    assert status(route53, check).startswith("Success")


def test_inverted_and_disabled(aws):
    """health-checks-creating-values: Inverted flips the status; a disabled check is healthy."""
    route53 = boto3.client("route53")
    host = deployed_api(PRIMARY)
    inverted = https_check(route53, host, "inv", Inverted=True)
    disabled = https_check(route53, "nowhere.example.com", "dis", Disabled=True)
    calc = route53.create_health_check(CallerReference="c", HealthCheckConfig={
        "Type": "CALCULATED", "ChildHealthChecks": [inverted, disabled], "HealthThreshold": 2})["HealthCheck"]["Id"]
    zone = route53.create_hosted_zone(Name="y.example.com", CallerReference="y")["HostedZone"]["Id"]
    failover(route53, zone, "y.example.com", calc, None)
    # The inverted check's endpoint is healthy: inverted it is unhealthy (after 3 rounds), and so the calculated one.
    for _ in range(3):
        answer = dns(route53, zone, "api.y.example.com")
    assert answer == "secondary.example.com"


def failover(route53, zone: str, zone_name: str, primary_check: str | None, secondary_check: str | None) -> None:
    changes = []
    for role, target, check in (("PRIMARY", "primary.example.com", primary_check),
                                ("SECONDARY", "secondary.example.com", secondary_check)):
        record = {"Name": f"api.{zone_name}", "Type": "A", "SetIdentifier": role.lower(), "Failover": role,
                  "AliasTarget": {"HostedZoneId": "Z1UJRXOUMOOFQ8", "DNSName": target, "EvaluateTargetHealth": True}}
        if check:
            record["HealthCheckId"] = check
        changes.append({"Action": "CREATE", "ResourceRecordSet": record})
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})


def dns(route53, zone: str, name: str) -> str:
    return route53.test_dns_answer(HostedZoneId=zone, RecordName=name, RecordType="A")["RecordData"][0]


def test_alarm_evaluation_and_sns_notification(aws):
    """AlarmThatSendsEmail / API_PutMetricAlarm: new alarms are INSUFFICIENT_DATA; data that
    breaches moves them to ALARM and notifies the topic; `ignore` keeps the state without data."""
    cloudwatch, sns, sqs = (boto3.client(s, region_name=DR) for s in ("cloudwatch", "sns", "sqs"))
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    cloudwatch.put_metric_alarm(AlarmName="switch", Namespace="drkit", MetricName="M", Statistic="Maximum",
                                Period=60, EvaluationPeriods=1, Threshold=1, TreatMissingData="ignore",
                                ComparisonOperator="GreaterThanOrEqualToThreshold", AlarmActions=[topic],
                                OKActions=[topic])
    state = lambda: cloudwatch.describe_alarms(AlarmNames=["switch"])["MetricAlarms"][0]["StateValue"]  # noqa: E731
    assert state() == "INSUFFICIENT_DATA"
    cloudwatch.put_metric_data(Namespace="drkit", MetricData=[{"MetricName": "M", "Value": 1}])
    assert state() == "ALARM"
    message = json.loads(json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])["Message"])
    assert message["NewStateValue"] == "ALARM" and message["AlarmName"] == "switch"
    cloudwatch.put_metric_alarm(AlarmName="switch", Namespace="drkit", MetricName="M", Statistic="Maximum",
                                Period=60, EvaluationPeriods=1, Threshold=1, TreatMissingData="ignore",
                                ComparisonOperator="GreaterThanOrEqualToThreshold", AlarmActions=[topic])
    assert state() == "ALARM"  # a re-put alarm keeps its state
    cloudwatch.put_metric_data(Namespace="drkit", MetricData=[{"MetricName": "M", "Value": 0}])
    assert state() == "ALARM"  # the period's Maximum is still 1
    cloudwatch.put_metric_alarm(AlarmName="low", Namespace="drkit", MetricName="N", Statistic="Average", Period=60,
                                EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
                                OKActions=[topic])
    cloudwatch.put_metric_data(Namespace="drkit", MetricData=[{"MetricName": "N", "Value": 0}])
    assert cloudwatch.describe_alarms(AlarmNames=["low"])["MetricAlarms"][0]["StateValue"] == "OK"
    bodies = [json.loads(json.loads(m["Body"])["Message"]) for m in sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]]
    assert [(b["AlarmName"], b["NewStateValue"]) for b in bodies] == [("low", "OK")]


def test_alarm_check_calculated_and_fail_open(aws):
    """health-checks-how-route-53-chooses-records: PRIMARY while healthy, SECONDARY when only it is
    healthy, PRIMARY when both are unhealthy; an alarm check follows its alarm, and
    InsufficientDataHealthStatus LastKnownStatus starts healthy."""
    route53, cloudwatch = boto3.client("route53"), boto3.client("cloudwatch", region_name=DR)
    cloudwatch.put_metric_alarm(AlarmName="switch", Namespace="drkit", MetricName="M", Statistic="Maximum",
                                Period=60, EvaluationPeriods=1, Threshold=1, TreatMissingData="ignore",
                                ComparisonOperator="GreaterThanOrEqualToThreshold")
    alarm_check = route53.create_health_check(CallerReference="a", HealthCheckConfig={
        "Type": "CLOUDWATCH_METRIC", "AlarmIdentifier": {"Region": DR, "Name": "switch"},
        "InsufficientDataHealthStatus": "LastKnownStatus"})["HealthCheck"]
    assert alarm_check["HealthCheckConfig"]["AlarmIdentifier"] == {"Region": DR, "Name": "switch"}
    primary_https = https_check(route53, deployed_api(PRIMARY), "p")
    secondary_https = https_check(route53, "down.example.com", "s", Disabled=True)
    calc = route53.create_health_check(CallerReference="c", HealthCheckConfig={
        "Type": "CALCULATED", "ChildHealthChecks": [primary_https, alarm_check["Id"]], "HealthThreshold": 2})
    zone = route53.create_hosted_zone(Name="w.example.com", CallerReference="w")["HostedZone"]["Id"]
    failover(route53, zone, "w.example.com", calc["HealthCheck"]["Id"], secondary_https)
    assert dns(route53, zone, "api.w.example.com") == "primary.example.com"  # no data: healthy
    cloudwatch.put_metric_data(Namespace="drkit", MetricData=[{"MetricName": "M", "Value": 1}])
    assert dns(route53, zone, "api.w.example.com") == "secondary.example.com"
    route53.update_health_check(HealthCheckId=secondary_https, Disabled=False)  # nowhere: fails
    for _ in range(3):
        answer = dns(route53, zone, "api.w.example.com")
    assert answer == "primary.example.com"  # both unhealthy: fail open to the primary
    with pytest.raises(ClientError) as calc_status:
        route53.get_health_check_status(HealthCheckId=calc["HealthCheck"]["Id"])
    assert calc_status.value.response["Error"]["Code"] == "InvalidInput"


def test_create_of_an_existing_record_is_invalid_change_batch(aws):
    """API_ChangeResourceRecordSets: CREATE returns an error if a record set with that name,
    type and set identifier already exists."""
    route53 = boto3.client("route53")
    zone = route53.create_hosted_zone(Name="v.example.com", CallerReference="v")["HostedZone"]["Id"]
    failover(route53, zone, "v.example.com", None, None)
    with pytest.raises(ClientError) as err:
        failover(route53, zone, "v.example.com", None, None)
    assert err.value.response["Error"]["Code"] == "InvalidChangeBatch"


def test_outage_switch_over_http():
    """A running sandbox: POST/DELETE /drkit-sandbox/outage make a region's API hosts fail."""
    with SandboxServer() as server:
        remote = RemoteOutage(server.endpoint_url)
        assert remote.begin(PRIMARY)["regions"] == {PRIMARY: {"aws_apis": False}}
        request = urllib.request.Request(server.endpoint_url + "/prod/health",
                                         headers={"Host": f"abc123.execute-api.{PRIMARY}.amazonaws.com"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 503
        assert remote.end(PRIMARY)["regions"] == {}
        remote.begin(DR, aws_apis=True)
        sqs = boto3.client("sqs", region_name=DR, endpoint_url=server.endpoint_url,
                           config=__import__("botocore.config").config.Config(retries={"total_max_attempts": 1}))
        with pytest.raises(ClientError) as api_down:
            sqs.list_queues()
        assert api_down.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        remote.end()
