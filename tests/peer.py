#!/usr/bin/env python3
"""Independent peer for the fileserv wire protocol, for interop tests.

Written from the protocol's description (docs/protocol.md), not from the
C sources, it behaves like the Python original fileserv descends from: one
request per connection, "<COMMAND> <args>\\r\\n\\r\\n" in, one json.dumps
object plus "\\r\\n\\r\\n" out, whole files held in memory, uploads
written in place. It adds the name checks of docs/protocol.md's "Names".

Server:  peer.py serve [--host 127.0.0.1] --port N --storage DIR [--timeout S]
         (--port 0 picks a free port; prints "listening on HOST:PORT")
Client:  peer.py [--host H] [--port N] [--timeout S] CMD ...
         CMD: list | get NAME OUTFILE | upload FILE NAME | delete NAME | raw
         raw sends stdin verbatim and copies the reply bytes (up to EOF)
         to stdout.
Client exit codes: 0 status OK, 1 status ERROR (message on stderr),
3 network failure (including the connection closing before the reply's
terminator), 4 a reply that is not a valid protocol JSON object.
"""
import argparse, base64, binascii, json, os, signal, socket, socketserver, sys

TERM = b"\r\n\r\n"
DEFAULT_PORT = 5666


def recv_until_term(sock):
    """Read until TERM appears; return (bytes before TERM, found?)."""
    buf = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(buf), False
        start = max(0, len(buf) - 3)
        buf += chunk
        i = buf.find(TERM, start)
        if i >= 0:
            return bytes(buf[:i]), True


# ---------------------------------------------------------------- server

def error(msg):
    return {"status": "ERROR", "data": msg}


def bad_name(name):
    if not name:
        return "empty file name"
    if name.startswith("."):
        return "file name must not start with '.'"
    if "/" in name:
        return "file name must not contain '/'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "file name must not contain control characters"
    if len(name.encode("utf-8")) > 255:
        return "file name longer than 255 bytes"
    return None


def dispatch(storage, line):
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return error("request is not valid UTF-8")
    parts = text.split(" ", 2)        # command, name, rest (upload data)
    cmd = parts[0].upper() if parts[0].isascii() else parts[0]
    if cmd == "":
        return error("empty request")
    if cmd == "LIST":
        return {"status": "OK", "data": sorted(
            n for n in os.listdir(storage)
            if os.path.isfile(os.path.join(storage, n)))}
    if cmd not in ("GET", "UPLOAD", "DELETE"):
        return error("unknown command: " + parts[0])
    if len(parts) < 2:
        return error("missing file name")
    name = parts[1]
    why = bad_name(name)
    if why:
        return error(why)
    path = os.path.join(storage, name)
    if cmd == "GET":
        if not os.path.isfile(path):
            return error("file not found: " + name)
        with open(path, "rb") as f:
            content = f.read()
        return {"status": "OK", "data_namafile": name,
                "data_file": base64.b64encode(content).decode("ascii")}
    if cmd == "UPLOAD":
        if len(parts) < 3:
            return error("missing file data")
        try:
            content = base64.b64decode(parts[2])   # lenient, like the original
        except (binascii.Error, ValueError) as e:
            return error("invalid base64: %s" % e)
        with open(path, "wb") as f:
            f.write(content)
        return {"status": "OK", "data": "file %s uploaded" % name}
    # DELETE
    if not os.path.isfile(path):
        return error("file not found: " + name)
    os.remove(path)
    return {"status": "OK", "data": "file %s deleted" % name}


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(self.server.io_timeout)
        try:
            line, _ = recv_until_term(sock)   # on early EOF: answer what came
            try:
                reply = dispatch(self.server.storage, line)
            except OSError as e:
                reply = error("%s: %s" % (type(e).__name__, e.strerror or e))
            sock.sendall(json.dumps(reply).encode("ascii") + TERM)
        except OSError:
            pass                               # client went away


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(args):
    os.makedirs(args.storage, exist_ok=True)
    srv = Server((args.host, args.port), Handler)
    srv.storage, srv.io_timeout = args.storage, args.timeout
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    print("listening on %s:%d" % (args.host, srv.server_address[1]), flush=True)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()
    return 0


# ---------------------------------------------------------------- client

def enc(s):
    return s.encode("utf-8", "surrogateescape")


def client(args):
    if args.cmd == "raw":
        request = sys.stdin.buffer.read()
    elif args.cmd == "list":
        request = b"LIST" + TERM
    elif args.cmd == "get":
        request = b"GET " + enc(args.name) + TERM
    elif args.cmd == "delete":
        request = b"DELETE " + enc(args.name) + TERM
    else:
        with open(args.file, "rb") as f:
            request = (b"UPLOAD " + enc(args.name) + b" "
                       + base64.b64encode(f.read()) + TERM)
    got = bytearray()
    try:
        with socket.create_connection((args.host, args.port),
                                      timeout=args.timeout) as sock:
            sock.sendall(request)
            if args.cmd == "raw":
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            else:
                body, found = recv_until_term(sock)
                if not found:
                    print("connection closed before reply terminator",
                          file=sys.stderr)
                    return 3
    except OSError as e:
        sys.stdout.buffer.write(got)
        print("network failure: %s" % e, file=sys.stderr)
        return 3
    if args.cmd == "raw":
        sys.stdout.buffer.write(got)
        return 0
    try:
        reply = json.loads(body.decode("utf-8").strip())
        status = reply["status"]
        if status == "ERROR":
            print(reply.get("data"), file=sys.stderr)
            return 1
        if status != "OK":
            raise ValueError("unknown status %r" % status)
        if args.cmd == "list":
            print(json.dumps(reply["data"]))
            return 0
        if args.cmd == "get":
            data = base64.b64decode(reply["data_file"], validate=True)
            with open(args.outfile, "wb") as f:
                f.write(data)
        print(reply.get("data", "OK"))
        return 0
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        print("bad reply: %s: %r" % (e, body[:200]), file=sys.stderr)
        return 4


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        p = argparse.ArgumentParser(prog="peer.py serve")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=DEFAULT_PORT)
        p.add_argument("--storage", required=True)
        p.add_argument("--timeout", type=float, default=60.0)
        return serve(p.parse_args(argv[1:]))
    common = argparse.ArgumentParser(add_help=False)   # options after CMD too
    common.add_argument("--host", default=argparse.SUPPRESS)
    common.add_argument("--port", type=int, default=argparse.SUPPRESS)
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS)
    p = argparse.ArgumentParser(prog="peer.py", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--timeout", type=float, default=60.0)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", parents=[common])
    sub.add_parser("raw", parents=[common])
    s = sub.add_parser("get", parents=[common])
    s.add_argument("name"); s.add_argument("outfile")
    s = sub.add_parser("upload", parents=[common])
    s.add_argument("file"); s.add_argument("name")
    s = sub.add_parser("delete", parents=[common])
    s.add_argument("name")
    return client(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
