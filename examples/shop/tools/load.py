"""Send N requests to a URL from C threads and count the answers by status.

A stand-in for fortio in the circuit-breaking task:

    python examples/shop/tools/load.py -c 3 -n 30 -X POST "$GATEWAY/checkout?item=1"

Requests go straight to the URL (no HTTP proxy); the run stops after N requests.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import threading
import time
import urllib.parse
from collections.abc import Sequence


def fetch(method: str, url: str, timeout: float) -> int:
    """The status of one request on a fresh connection; 0 when there is no answer."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Content-Length": "0"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def run(method: str, url: str, concurrency: int, requests: int, timeout: float) -> dict[int, int]:
    counts: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    remaining = [requests]

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            status = fetch(method, url, timeout)
            with lock:
                counts[status] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return dict(sorted(counts.items()))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Send N requests to a URL and count the answers.")
    parser.add_argument("url")
    parser.add_argument("-X", "--method", default="GET")
    parser.add_argument("-c", "--concurrency", type=int, default=2)
    parser.add_argument("-n", "--requests", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    counts = run(args.method, args.url, args.concurrency, args.requests, args.timeout)
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    print(f"{total} requests in {elapsed:.2f}s, {args.concurrency} at a time")
    for status, n in counts.items():
        label = "no answer" if status == 0 else f"HTTP {status}"
        print(f"  {label}: {n} ({100 * n / total:.0f}%)")


if __name__ == "__main__":
    main()
