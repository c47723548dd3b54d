"""A subscriber: prints every CloudEvent it gets. With FAIL_OVER=N it answers 500 to
an order whose amount is over N (its trigger retries, then dead-letters it)."""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ.get("K_SERVICE") or os.environ.get("AMI_WORKLOAD", "consumer")
FAIL_OVER = int(os.environ.get("FAIL_OVER", "0"))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 65536))
        attrs = {k[3:]: v for k, v in self.headers.items() if k.lower().startswith("ce-")}
        print(f"{NAME}: {attrs.get('type')} {attrs.get('id')} {body.decode(errors='replace')}")
        sys.stdout.flush()
        amount = int(attrs.get("amount", "0") or 0)
        status = 500 if FAIL_OVER and amount > FAIL_OVER else 202
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
