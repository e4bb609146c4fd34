"""moto's server mode, plus the protocol today's CloudWatch SDKs speak.

The AWS SDK for Rust sends CloudWatch calls in the Smithy RPC v2 CBOR protocol
(`POST /service/GraniteServiceVersion20100801/operation/<Operation>`, CBOR bodies). moto
5.2.5 knows CloudWatch only in the Query and JSON protocols and answers that path with a
404. This wraps moto's WSGI application: such a request is decoded (botocore's own CBOR
codec), handed to moto as the equivalent JSON-protocol call, and moto's JSON answer is
encoded back into CBOR by the operation's output shape (timestamps as tag 1). Every other
request goes to moto untouched.

Usage: python scripts/moto_server.py [-H HOST] [-p PORT]   (as `moto_server`)
"""

import base64
import io
import json
import sys
from datetime import datetime

from botocore.parsers import RpcV2CBORParser
from botocore.serialize import CBORSerializer
from botocore.session import get_session

from moto import server

PREFIX = "/service/GraniteServiceVersion20100801/operation/"
TARGET = "GraniteServiceVersion20100801."
MODEL = get_session().get_service_model("cloudwatch")


def decode(body):
    """A CBOR request body as JSON-ready Python values (timestamps as epoch seconds)."""
    if not body:
        return {}
    parser = RpcV2CBORParser()
    value = parser.parse_data_item(io.BufferedReader(io.BytesIO(body)))

    def plain(v):
        if isinstance(v, datetime):
            return v.timestamp()
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(v).decode()
        return v

    return plain(value)


class Encoder(CBORSerializer):
    TIMESTAMP_FORMAT = "unixtimestamp"

    def encode(self, value, shape):
        out = bytearray()
        if shape is None:
            self._serialize_type_map_generic(out, value or {})
        else:
            self._serialize_data_item(out, value, shape)
        return bytes(out)

    def _serialize_type_map_generic(self, out, value):
        """An error body (`__type`, `message`): strings only."""
        strings = {str(k): str(v) for k, v in value.items() if v is not None}
        out.extend(self._get_initial_byte(self.MAP_MAJOR_TYPE, len(strings)))
        for k, v in strings.items():
            self._serialize_type_string(out, k, None, None)
            self._serialize_type_string(out, v, None, None)


def cbor_middleware(app):
    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            return app(environ, start_response)
        operation = path[len(PREFIX):]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.dumps(decode(environ["wsgi.input"].read(length))).encode()
        environ = dict(environ)
        environ["PATH_INFO"] = "/"
        environ["CONTENT_TYPE"] = "application/x-amz-json-1.0"
        environ["HTTP_X_AMZ_TARGET"] = TARGET + operation
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers
            return lambda _: None

        answer = b"".join(app(environ, capture))
        status = captured.get("status", "500 Internal Server Error")
        try:
            value = json.loads(answer or b"{}")
        except ValueError:
            value = {"__type": "InternalFailure", "message": answer.decode(errors="replace")}
        if status.startswith("2"):
            shape = MODEL.operation_model(operation).output_shape
        else:
            shape = None
        encoded = Encoder().encode(value, shape)
        headers = [
            (k, v)
            for k, v in captured.get("headers", [])
            if k.lower() not in ("content-type", "content-length")
        ]
        headers += [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("Content-Length", str(len(encoded))),
        ]
        start_response(status, headers)
        return [encoded]

    return wrapped


def fargate_task_memory():
    """moto 5.2.5's RunTask adds up the containers' `memory` and fails with a 500 on a
    Fargate task definition that sets memory only for the task, as ECS allows (mooring's
    pre-deploy tasks run from such revisions): such a container counts as 0 MiB here."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def calculate(task_definition):
        defined = task_definition.container_definitions
        task_definition.container_definitions = [
            c
            if any(c.get(k) is not None for k in ("Memory", "MemoryReservation", "memory", "memoryReservation"))
            else dict(c, memory=0)
            for c in defined
        ]
        try:
            return original(task_definition)
        finally:
            task_definition.container_definitions = defined

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(calculate)


class App(server.DomainDispatcherApplication):
    """moto's dispatcher with the CBOR front."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._front = cbor_middleware(super().__call__)

    def __call__(self, environ, start_response):
        return self._front(environ, start_response)


if __name__ == "__main__":
    server.DomainDispatcherApplication = App
    fargate_task_memory()
    server.main(sys.argv[1:])
