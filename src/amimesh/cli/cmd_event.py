"""`ami event send`: send a CloudEvent to a Broker, as `kn event send` does.

    ami event send --to default --type order.placed --source /shop --data '{"id": 1}'
    ami event send --to default -t ping -s /cli -f id=1 -f item=book -e region=eu
    ami event send --to-url http://127.0.0.1:8080/ -t ping -s /cli

The event goes to the broker process on the mesh's host (loopback), binary mode,
CloudEvents 1.0. Exit 0 when the broker answered 2xx (202: stored), else 1.
"""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.cmd_apply import MESH_HELP


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("event", help="send CloudEvents, as kn event")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    send: argparse.ArgumentParser = actions.add_parser("send", help="send one CloudEvent")
    to = send.add_mutually_exclusive_group(required=True)
    to.add_argument(
        "--to", metavar="BROKER", help="a Broker's name (or Broker:eventing.knative.dev/v1:NAME)"
    )
    to.add_argument("--to-url", metavar="URL", help="any URL, posted to directly")
    send.add_argument("-t", "--type", required=True, help="the event's type")
    send.add_argument("-s", "--source", required=True, help="the event's source")
    send.add_argument("-i", "--id", help="default: a new UUID")
    send.add_argument("-d", "--data", help="the body, as given")
    send.add_argument(
        "-f",
        "--field",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a field of a JSON body (repeat)",
    )
    send.add_argument(
        "-e",
        "--extension",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extension attribute (repeat)",
    )
    send.add_argument("--content-type", default="application/json")
    send.add_argument("-n", "--namespace", default="default", help="default: default")
    send.add_argument("--mesh", help=MESH_HELP)
    send.set_defaults(run=run_send)


def run_send(args: argparse.Namespace) -> int:
    import uuid

    from amimesh.cli import eventing, render
    from amimesh.runtime import state

    out, err = render.console(), render.console(stderr=True)
    try:
        extensions = dict(_pair(e) for e in args.extension)
        event = eventing.Event(
            type=args.type,
            source=args.source,
            id=args.id or str(uuid.uuid4()),
            data=eventing.data_of(args.data, args.field),
            content_type=args.content_type,
            extensions=extensions,
        )
    except ValueError as e:
        render.print_error(err, str(e))
        return 2
    try:
        if args.to_url:
            status, text = eventing.post(args.to_url, event)
        else:
            broker = args.to.rsplit(":", 1)[-1]
            status, text = eventing.send_event(state.find(args.mesh), event, args.namespace, broker)
    except (eventing.NoBroker, FileNotFoundError, OSError) as e:
        render.print_error(err, str(e))
        return 1
    if 200 <= status < 300:
        out.print(f"Event '{event.id}' sent ({status}).", markup=False)
        return 0
    render.print_error(err, f"HTTP {status}: {text.strip()}")
    return 1


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"an extension is NAME=VALUE, got {text!r}")
    return key, value
