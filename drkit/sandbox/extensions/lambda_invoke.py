"""Lambda Invoke runs the deployed Python code, as Lambda does, without Docker.

moto stores a function's zip (`LambdaFunction.code_bytes`) but runs it only in a Docker
container. This extension runs a Python zip function in a child process of its own, so each
invocation sees only what Lambda gives a function:
https://docs.aws.amazon.com/lambda/latest/dg/python-handler.html
- the zip extracted as the task root, `Handler` "module.function" imported from it (init), then
  called with the event and a context object;
- the function's environment variables plus Lambda's reserved ones (`AWS_REGION`,
  `AWS_LAMBDA_FUNCTION_NAME`, ...), with boto3 pointed at this sandbox by `AWS_ENDPOINT_URL`
  (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime);
- `Timeout` enforced on the handler (the child is killed); init has its own 10 s limit
  (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html);
- the answer as Invoke returns it: StatusCode 200, the JSON result; on an exception
  `X-Amz-Function-Error: Unhandled` and {errorMessage, errorType, requestId, stackTrace}; a
  timeout is `Sandbox.Timedout`; `LogResult` (the last 4 KB of the log, base64) with LogType=Tail
  (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html,
  https://docs.aws.amazon.com/lambda/latest/dg/python-exceptions.html);
- the log written to CloudWatch Logs `/aws/lambda/<name>` with START/END/REPORT lines.

The child reaches the sandbox over HTTP. Over the sandbox's own server the address is the Host
of the Invoke request; under an in-process `mock_aws()` (no server) a loopback server on the
same moto backends is started once, on first need. Non-Python or image functions keep moto's
own behaviour. Every invocation is a cold start (no warm reuse), which Lambda also allows.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaFunction

from drkit.sandbox.timings import SandboxTimings

_MARK = "_drkit_lambda_invoke_installed"
INIT_TIMEOUT = 10.0  # Lambda's limit on the init phase (module import)
LOG_TAIL_BYTES = 4096
UNHANDLED = "Unhandled"

# Runs in the child: import the handler (init), report ready, read the event, call, report.
# Results travel on a dedicated pipe, so whatever the handler prints stays in the log.
_BOOTSTRAP = r"""
import importlib, json, os, sys, time, traceback
task_root, handler_spec, request_id, deadline_ms = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
control = os.fdopen(int(sys.argv[5]), "w")
def report(message):
    control.write(json.dumps(message) + "\n"); control.flush()
def error(exc, kind=None):
    return {"errorMessage": str(exc), "errorType": kind or type(exc).__name__, "requestId": request_id,
            "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__))}
sys.path.insert(0, task_root)
module_name, _, function_name = handler_spec.rpartition(".")
try:
    module = importlib.import_module(module_name.replace("/", "."))
except Exception as exc:
    report({"init_error": {"errorMessage": f"Unable to import module '{module_name}': {exc}",
                           "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []}})
    sys.exit(0)
function = getattr(module, function_name, None)
if not callable(function):
    report({"init_error": {"errorMessage": f"Handler '{function_name}' missing on module '{module_name}'",
                           "errorType": "Runtime.HandlerNotFound", "requestId": "", "stackTrace": []}})
    sys.exit(0)
report({"ready": True})
event = json.loads(sys.stdin.buffer.read() or b"{}")
class Context:
    aws_request_id = request_id
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
    invoked_function_arn = os.environ["_DRKIT_FUNCTION_ARN"]
    memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
    log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
    log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
    identity = None
    client_context = None
    _deadline = time.time() * 1000 + float(deadline_ms)
    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline - time.time() * 1000))
try:
    result = function(event, Context())
except Exception as exc:
    failure = error(exc)
    print(f"[ERROR] {failure['errorType']}: {failure['errorMessage']}", file=sys.stderr, flush=True)
    report({"error": failure})
    sys.exit(0)
try:
    report({"result": json.dumps(result)})
except (TypeError, ValueError) as exc:
    report({"error": {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError",
                      "requestId": request_id, "stackTrace": []}})
"""


@dataclass
class Invocation:
    """What Invoke answers: the payload, FunctionError (None when it succeeded), the log text."""

    payload: bytes
    function_error: str | None
    log: str
    request_id: str
    timed_out: bool = False

    def log_tail(self) -> str:
        return base64.b64encode(self.log.encode()[-LOG_TAIL_BYTES:]).decode()


def install(timings: SandboxTimings) -> None:
    if getattr(LambdaFunction, _MARK, False):
        return
    setattr(LambdaFunction, _MARK, True)
    original = LambdaFunction.invoke

    def invoke(self: LambdaFunction, body: Any, request_headers: Any, response_headers: Any) -> Any:
        if not runs_here(self):
            return original(self, body, request_headers, response_headers)
        event = _event_bytes(body)
        endpoint = endpoint_from_host(_header(request_headers, "Host"))
        if (_header(request_headers, "X-Amz-Invocation-Type") or "RequestResponse") == "Event":
            # Asynchronous: Lambda queues the event and answers 202 at once.
            threading.Thread(target=run_function, args=(self, event, endpoint), daemon=True).start()
            return b""
        result = run_function(self, event, endpoint)
        if result.function_error:
            response_headers["x-amz-function-error"] = result.function_error
        response_headers["x-amz-log-result"] = result.log_tail()  # moto drops it unless LogType=Tail
        response_headers["x-amz-executed-version"] = "$LATEST"
        response_headers["x-amzn-requestid"] = result.request_id
        return result.payload

    LambdaFunction.invoke = invoke  # type: ignore[method-assign]


def runs_here(function: LambdaFunction) -> bool:
    """Python zip functions run here; anything else keeps moto's (Docker) behaviour."""
    return (str(function.run_time or "").startswith("python") and function.package_type == "Zip"
            and bool(getattr(function, "code_bytes", b"")) and bool(function.handler))


def run_function(function: LambdaFunction, event: bytes, endpoint: str | None,
                 timeout: float | None = None) -> Invocation:
    """Run one invocation of `function` in a child process; `timeout` defaults to the
    function's own Timeout. `endpoint` is the sandbox's address (None: start a loopback one)."""
    request_id = str(uuid.uuid4())
    limit = float(timeout if timeout is not None else function.timeout or 3)
    task_root = _task_root(function.code_bytes)
    stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
    env = _environment(function, endpoint or loopback_endpoint(), stream)
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-I", "-c", _BOOTSTRAP, task_root, function.handler, request_id,
         str(int(limit * 1000)), str(write_fd)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        cwd=task_root, pass_fds=(write_fd,),
    )
    os.close(write_fd)
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(child.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    with os.fdopen(read_fd, "r") as control:
        first = _next_message(control, INIT_TIMEOUT)
        if first.get("ready"):
            handler_started = time.monotonic()
            try:
                child.stdin.write(event)  # type: ignore[union-attr]
                child.stdin.close()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass
            outcome = _next_message(control, limit)
        else:
            handler_started = time.monotonic()
            outcome = first
    timed_out = outcome.get("timeout", False)
    if child.poll() is None:
        if timed_out:
            child.kill()
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    reader.join(timeout=2)
    duration_ms = (time.monotonic() - handler_started) * 1000
    printed = b"".join(output).decode("utf-8", "replace")
    payload, error = _answer(outcome, request_id, limit, child.returncode)
    log = (f"START RequestId: {request_id} Version: $LATEST\n{printed}"
           + (f"{time.strftime('%Y-%m-%dT%H:%M:%S')}Z {request_id} Task timed out after {limit:.2f} seconds\n"
              if timed_out else "")
           + f"END RequestId: {request_id}\n"
           f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
           f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\tMemory Size: {function.memory_size} MB\t"
           f"Init Duration: {(handler_started - started) * 1000:.2f} ms\n")
    _save_log(function, log)
    return Invocation(payload, error, log, request_id, timed_out)


def _answer(outcome: dict[str, Any], request_id: str, limit: float, exit_code: int | None) -> tuple[bytes, str | None]:
    if "result" in outcome:
        return outcome["result"].encode(), None
    if outcome.get("timeout"):
        error = {"errorType": "Sandbox.Timedout",
                 "errorMessage": f"RequestId: {request_id} Error: Task timed out after {limit:.2f} seconds"}
    else:
        error = outcome.get("error") or outcome.get("init_error") or {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {exit_code}",
        }
    return json.dumps(error).encode(), UNHANDLED


def _next_message(control: Any, timeout: float) -> dict[str, Any]:
    """The child's next control message, {"timeout": True} if none comes in time, or {} if the
    child exited without one."""
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            return {"timeout": True}
        line = control.readline()
        return json.loads(line) if line else {}
    finally:
        selector.close()


def _environment(function: LambdaFunction, endpoint: str, stream: str) -> dict[str, str]:
    """Only what Lambda gives a function: no variable of the sandbox's own process leaks in."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONUNBUFFERED": "1",
        "LAMBDA_TASK_ROOT": "",
        "_HANDLER": function.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.run_time}",
        "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": function.logs_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "_DRKIT_FUNCTION_ARN": function.function_arn,
        # The execution role's credentials on AWS; any credentials work against the sandbox.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update({k: str(v) for k, v in (function.environment_vars or {}).items()})
    env["AWS_ENDPOINT_URL"] = endpoint  # after the function's own: its calls must reach the sandbox
    env["LAMBDA_TASK_ROOT"] = _task_root(function.code_bytes)
    return env


_extract_lock = threading.Lock()
_task_roots: dict[str, str] = {}
_scratch: dict[str, str] = {}


def _task_root(code: bytes) -> str:
    """The zip extracted once per code digest into a private temporary directory."""
    digest = hashlib.sha256(code).hexdigest()
    with _extract_lock:
        if digest not in _task_roots:
            if "root" not in _scratch:
                _scratch["root"] = tempfile.mkdtemp(prefix="drkit-lambda-")
            target = os.path.join(_scratch["root"], digest[:16])
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(target)  # zipfile drops absolute paths and '..' components
            _task_roots[digest] = target
        return _task_roots[digest]


def _save_log(function: LambdaFunction, log: str) -> None:
    try:
        function.logs_backend.ensure_log_group(function.logs_group_name)
        function.save_logs(log)
    except Exception:  # a log that cannot be stored must not change the invocation's answer
        pass


def _event_bytes(body: Any) -> bytes:
    raw = body.encode() if isinstance(body, str) else bytes(body or b"")
    if not raw.strip():
        return b"{}"
    try:
        json.loads(raw)
    except ValueError:
        raise LambdaClientError("InvalidRequestContentException",
                                "Could not parse request body into json: Unexpected character") from None
    return raw


def _header(headers: Any, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def endpoint_from_host(host: str | None) -> str | None:
    """The sandbox's own address from a request's Host, or None when the request did not come
    over the sandbox's HTTP server (in-process mocks address AWS's own host names)."""
    if not host or host.split(":")[0].endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return None
    return f"http://{host}"


_loopback_lock = threading.Lock()
_loopback: dict[str, Any] = {}


def loopback_endpoint() -> str:
    """A server on 127.0.0.1 over the same in-process moto backends, for children invoked under
    mock_aws() (their boto3 cannot see the parent's in-process mock). Started once."""
    with _loopback_lock:
        if "url" not in _loopback:
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
            from werkzeug.serving import WSGIRequestHandler, make_server

            from drkit.sandbox.extensions.apigateway_serving import ApiGatewayServing

            class Quiet(WSGIRequestHandler):
                def log_request(self, *args: Any, **kwargs: Any) -> None:
                    """Per-request lines would drown the test output."""

            app = ApiGatewayServing(DomainDispatcherApplication(create_backend_app))
            server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
            threading.Thread(target=server.serve_forever, name="drkit-lambda-loopback", daemon=True).start()
            _loopback["server"] = server
            _loopback["url"] = f"http://127.0.0.1:{server.server_port}"
        return _loopback["url"]
