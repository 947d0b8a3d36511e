# The strict reference parser of lvs-l7's differential test (src/differential.rs): h11, the
# HTTP/1.1 library of Python (Debian package python3-h11), reads each input as a server would.
# One input per line on stdin, hex-encoded (prefixed "R " for a stream of responses, read as
# the client of GET requests would); one answer per line on stdout:
#   STATUS METHOD:BODY_HEX:BYTES_USED ...     (one METHOD:... per message read whole)
# (a response's METHOD is its status code)
# STATUS: "incomplete" (wants more bytes), "error" (refused), "closed" (the connection ends after
# the last message: HTTP/1.0, Connection: close) or "paused" (a protocol switch).
import sys

import h11


def parse(data):
    if not data:
        # receive_data(b"") would mean the end of the stream.
        return [], "incomplete"
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    msgs, cur = [], None
    while True:
        try:
            ev = conn.next_event()
        except h11.RemoteProtocolError:
            return msgs, "error"
        if ev is h11.NEED_DATA:
            return msgs, "incomplete"
        if ev is h11.PAUSED:
            return msgs, "paused"
        if isinstance(ev, h11.ConnectionClosed):
            return msgs, "incomplete"
        if isinstance(ev, h11.Request):
            cur = {"method": ev.method.decode("latin-1"), "body": b""}
        elif isinstance(ev, h11.Data):
            cur["body"] += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            end = len(data) - len(conn.trailing_data[0])
            msgs.append("%s:%s:%d" % (cur["method"], cur["body"].hex(), end))
            try:
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:
                    return msgs, "closed"
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return msgs, "closed"


def parse_responses(data):
    if not data:
        return [], "incomplete"
    conn = h11.Connection(h11.CLIENT)
    msgs, cur = [], None
    try:
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
        conn.send(h11.EndOfMessage())
    except h11.LocalProtocolError:
        return msgs, "error"
    conn.receive_data(data)
    while True:
        try:
            ev = conn.next_event()
        except h11.RemoteProtocolError:
            return msgs, "error"
        if ev is h11.NEED_DATA or isinstance(ev, h11.ConnectionClosed):
            return msgs, "incomplete"
        if ev is h11.PAUSED:
            return msgs, "paused"
        if isinstance(ev, h11.InformationalResponse):
            continue
        if isinstance(ev, h11.Response):
            cur = {"method": str(ev.status_code), "body": b""}
        elif isinstance(ev, h11.Data):
            cur["body"] += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            end = len(data) - len(conn.trailing_data[0])
            msgs.append("%s:%s:%d" % (cur["method"], cur["body"].hex(), end))
            if conn.their_state is h11.MUST_CLOSE or conn.our_state is h11.MUST_CLOSE:
                return msgs, "closed"
            try:
                conn.start_next_cycle()
                conn.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
                conn.send(h11.EndOfMessage())
            except h11.LocalProtocolError:
                return msgs, "closed"


for line in sys.stdin:
    line = line.rstrip("\r\n")
    if line.startswith("R "):
        msgs, status = parse_responses(bytes.fromhex(line[2:]))
    else:
        msgs, status = parse(bytes.fromhex(line))
    print(" ".join([status] + msgs), flush=True)
