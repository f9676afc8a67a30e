#!/usr/bin/env python3
"""Minimal QMP client (standard library only) for the reference runs.

  qmp.py SOCKET screendump PATH [DEVICE]   PNG screendump (QEMU >= 7.1: format=png)
  qmp.py SOCKET quit
  qmp.py SOCKET CMD [JSON-ARGS]            any QMP command; prints the "return" value as JSON
"""
import json
import socket
import sys
import time


class Qmp:
    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.buf = b""
        greeting = self._read()
        if "QMP" not in greeting:
            raise RuntimeError(f"not a QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, args=None):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"{cmd}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    q = Qmp(argv[1])
    cmd = argv[2]
    if cmd == "screendump":
        args = {"filename": argv[3], "format": "png"}
        if len(argv) > 4:
            args["device"] = argv[4]
        t0 = time.monotonic()
        q.execute("screendump", args)
        print(f"screendump {argv[3]} in {time.monotonic() - t0:.3f} s")
    elif cmd == "quit":
        try:
            q.execute("quit")
        except ConnectionError:
            pass
    else:
        args = json.loads(argv[3]) if len(argv) > 3 else None
        print(json.dumps(q.execute(cmd, args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
