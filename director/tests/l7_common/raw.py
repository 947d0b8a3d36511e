# A raw HTTP/1.1 server that records, byte for byte, what each connection received.
#   python3 raw.py NAME PORT DIR
# Listens on both families. Connection K (from 1) appends every byte it reads to DIR/K.raw;
# a PROXY header (v1 or v2) opening it is recorded and skipped. Requests end at the blank
# line plus Content-Length bytes. Every answer carries "X-Conn: K" and, unless said otherwise,
# the body "NAME conn=K n=N METHOD PATH" (N: the request's number on that connection).
# Paths:
#   /ntlm...          401 with "WWW-Authenticate: NTLM" (then as usual on that connection)
#   /stray            the answer, then 0.2 s later stray bytes (a whole response), and
#                     DIR/K.stray once they are sent
#   /hangup-reused    on a connection that served a request before: closes without answering
#   /switch           "101 Switching Protocols", whatever was asked, then silence
import os, socket, sys, threading, time

NAME, PORT, DIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
count = [0]


def answer(c, k, status, body, extra=b""):
    b = body.encode()
    c.sendall(b"HTTP/1.1 %s\r\nX-Conn: %d\r\nContent-Length: %d\r\n%s\r\n" % (status, k, len(b), extra) + b)


def more(c, path):
    """The next bytes from c, recorded in path as they came."""
    d = c.recv(65536)
    with open(path, "ab") as f:
        f.write(d)
    return d


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def skip_proxy(c, path):
    """What follows a PROXY header at the start of c (all of it, if there is none)."""
    pending = b""
    while len(pending) < 16 and (V2_SIG.startswith(pending[:12]) or b"PROXY ".startswith(pending[:6])):
        d = more(c, path)
        if not d:
            return pending
        pending += d
        if pending.startswith(b"PROXY ") and b"\r\n" in pending:
            break
    if pending.startswith(b"PROXY "):
        while b"\r\n" not in pending:
            d = more(c, path)
            if not d:
                return b""
            pending += d
        return pending[pending.index(b"\r\n") + 2:]
    if pending.startswith(V2_SIG):
        end = 16 + int.from_bytes(pending[14:16], "big")
        while len(pending) < end:
            d = more(c, path)
            if not d:
                return b""
            pending += d
        return pending[end:]
    return pending


def serve(c, k):
    path = os.path.join(DIR, "%d.raw" % k)
    pending = skip_proxy(c, path)
    n = 0
    while True:
        while b"\r\n\r\n" not in pending:
            d = more(c, path)
            if not d:
                return
            pending += d
        end = pending.index(b"\r\n\r\n") + 4
        head = pending[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        while len(pending) < end + length:
            d = more(c, path)
            if not d:
                return
            pending += d
        pending = pending[end + length:]
        n += 1
        method, target = head.split(" ", 2)[:2]
        body = "%s conn=%d n=%d %s %s\n" % (NAME, k, n, method, target)
        if target.startswith("/hangup-reused") and n > 1:
            c.close()
            return
        if target.startswith("/switch"):
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            continue
        if target.startswith("/ntlm"):
            answer(c, k, b"401 Unauthorized", body, b"WWW-Authenticate: NTLM\r\n")
            continue
        answer(c, k, b"200 OK", body)
        if target.startswith("/stray"):
            time.sleep(0.2)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!")
            open(os.path.join(DIR, "%d.stray" % k), "w").close()


def run(c, k):
    try:
        serve(c, k)
    except OSError:
        pass
    finally:
        c.close()


s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", PORT))
s.listen(128)
while True:
    c, _ = s.accept()
    with lock:
        count[0] += 1
        k = count[0]
    threading.Thread(target=run, args=(c, k), daemon=True).start()
