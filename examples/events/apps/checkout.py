"""The shop's checkout: `POST /order` with {"amount": N} publishes an `order.placed`
CloudEvent to the broker, through this workload's sidecar. Its SinkBinding gives it
the broker's address as K_SINK (and K_CE_OVERRIDES)."""

import json
import os
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 65536))
        order = json.loads(body or b"{}")
        order.setdefault("id", str(uuid.uuid4())[:8])
        headers = {
            "ce-specversion": "1.0",
            "ce-id": order["id"],
            "ce-source": "/shop/checkout",
            "ce-type": "order.placed",
            "ce-amount": str(order.get("amount", 0)),
            "content-type": "application/json",
        }
        overrides = json.loads(os.environ.get("K_CE_OVERRIDES", "{}")).get("extensions", {})
        headers.update({f"ce-{k}": v for k, v in overrides.items()})
        request = urllib.request.Request(
            os.environ["K_SINK"], data=json.dumps(order).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                status = resp.status
        except urllib.error.HTTPError as e:
            status = e.code
        answer = json.dumps({"order": order["id"], "broker": status}).encode() + b"\n"
        self.send_response(202 if status == 202 else 502)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
