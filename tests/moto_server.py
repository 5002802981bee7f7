"""moto's server with requests handled one at a time.

moto's stock server is threaded and evaluates DynamoDB condition expressions
and the writes they guard without a lock, so two concurrent conditional writes
can both succeed, which real DynamoDB never allows. Our conformance suites race
conditional writes on purpose (unique claims, optimistic concurrency, leases),
so we serialise requests to get DynamoDB's per-item atomicity back.

Usage: python tests/moto_server.py PORT
"""
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialised(environ, start_response):
    with lock:
        # Materialise the body inside the lock: moto builds responses lazily.
        return list(app(environ, start_response))


if __name__ == "__main__":
    run_simple("127.0.0.1", int(sys.argv[1]), serialised, threaded=True, request_handler=MotoRequestHandler)
