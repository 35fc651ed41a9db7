#!/usr/bin/env python3
"""Runs moto (DynamoDB, Secrets Manager, SQS, ...) on 127.0.0.1.

Binds the given port (default 0: an ephemeral one), prints one line
`listening on http://127.0.0.1:<port>` once it accepts connections, then serves
until its standard input closes, so that it dies with the process that started
it, even when that one crashes.
"""

import argparse
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"listening on http://{host}:{port}", flush=True)

    sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
    server.stop()


if __name__ == "__main__":
    main()
