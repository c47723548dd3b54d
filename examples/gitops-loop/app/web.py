"""The web service: answers with its version (VERSION), one line."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def greeting(version: str) -> str:
    return f"hello from web {version}\n"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (b"ok\n" if self.path == "/health" else greeting(os.environ["VERSION"]).encode())
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
