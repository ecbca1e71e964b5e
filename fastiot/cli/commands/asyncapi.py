"""``fastiot-workbench asyncapi``: print the AsyncAPI 3.0 document of service classes (JSON or YAML).

Example:
    $ fastiot-workbench asyncapi fastiot.demo my_service.py:OverheatWatch --yaml > asyncapi.yaml
"""

from __future__ import annotations

import argparse
import sys

from fastiot.cli.commands._broker import APP
from fastiot.cli.registry import register
from fastiot.exceptions import FastIoTError

__all__ = ["add_arguments", "asyncapi_command"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``fastiot-workbench asyncapi``."""
    parser.add_argument(
        "services",
        nargs="+",
        metavar="MODULE[:CLASS]",
        help="a .py file or dotted module, optionally :ClassName (default: every service it defines)",
    )
    parser.add_argument("--yaml", action="store_true", help="print YAML instead of JSON")
    parser.add_argument("--title", default="FastIoT services", help="the document's title")
    parser.add_argument("--version", default="1.0.0", dest="api_version", help="the API's version")
    parser.add_argument(
        "--server", action="append", default=None, metavar="URL", help="a NATS server to list (repeatable)"
    )


def asyncapi_command(args: argparse.Namespace) -> int:
    """``fastiot-workbench asyncapi``: print the document; 2 if a module or class cannot be loaded."""
    from fastiot.services.asyncapi import asyncapi
    from fastiot.services.loading import load_services

    try:
        classes = [cls for spec in args.services for cls in load_services(spec)]
        doc = asyncapi(
            *dict.fromkeys(classes), title=args.title, version=args.api_version, servers=args.server
        )
    except FastIoTError as e:
        print(f"{APP} asyncapi: {e}", file=sys.stderr)
        return 2
    print(doc.to_yaml() if args.yaml else doc.to_json(), flush=True)
    return 0


register(
    "asyncapi",
    help="print the AsyncAPI 3.0 document of service classes (JSON, or YAML with --yaml)",
    description="Print the AsyncAPI 3.0 document of the services in MODULE (a .py file or dotted module; "
    "MODULE:CLASS for one): channels are their subjects, operations their @subscribe, @reply and "
    "declared publishes, messages the JSON schemas of their models (msgpack-encoded).",
    add_arguments=add_arguments,
    run=asyncapi_command,
)
