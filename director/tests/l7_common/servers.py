# Real servers for the content-switching tests. Each names itself in every answer.
#   python3 servers.py NAME PORT [CERT KEY]     (CERT KEY: serve HTTPS)
# GET /big/N         N bytes of the pattern i % 251, with Content-Length
# GET /chunked/N     the same bytes, chunked
# GET /sleep/S       answers after S seconds
# GET /die           promises 10 MB, sends 100 kB, then drops the connection
# GET /ws            WebSocket handshake, then echoes every frame (unmasked)
# POST/PUT           reads the body (Content-Length or chunked): "NAME sha256 LENGTH"
# anything else      "NAME METHOD PATH xff=X-Forwarded-For fwd=Forwarded proxy=PROXY-source"
import base64, hashlib, http.server, ipaddress, socket, socketserver, ssl, sys, time

NAME, PORT = sys.argv[1], int(sys.argv[2])
PATTERN = bytes(i % 251 for i in range(251 * 261))  # 65511 bytes, a whole number of periods


def pattern(n):
    full, rest = divmod(n, len(PATTERN))
    for _ in range(full):
        yield PATTERN
    if rest:
        yield PATTERN[:rest]


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        # A PROXY protocol header (v1 or v2) before the first request names the client.
        super().setup()
        self.proxy = "-"
        if isinstance(self.connection, ssl.SSLSocket):
            return
        try:
            head = self.connection.recv(16, socket.MSG_PEEK)
        except OSError:
            return
        if head.startswith(b"PROXY "):
            self.proxy = "v1:" + self.rfile.readline().decode().split()[2]
        elif head.startswith(b"\r\n\r\n\x00\r\nQUIT\n"):
            h = self.rfile.read(16)
            body = self.rfile.read(int.from_bytes(h[14:16], "big"))
            # The family byte: 0x11 TCP over IPv4, 0x21 TCP over IPv6.
            src = body[0:16] if h[13] == 0x21 else body[0:4]
            self.proxy = "v2:" + str(ipaddress.ip_address(src))

    def log_message(self, *a):
        pass

    def reply(self, body, code=200):
        body = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        p = self.path
        if p.startswith("/big/") or p.startswith("/app/big/"):
            n = int(p.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command == "HEAD":
                return
            for part in pattern(n):
                self.wfile.write(part)
        elif p.startswith("/chunked/") or p.startswith("/app/chunked/"):
            n = int(p.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in pattern(n):
                for i in range(0, len(part), 10000):
                    piece = part[i:i + 10000]
                    self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif p.startswith("/sleep/"):
            time.sleep(float(p.rsplit("/", 1)[1]))
            self.reply(NAME + " slept\n")
        elif p.startswith("/die"):
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1000 * 1000))
            self.end_headers()
            self.wfile.write(PATTERN[:50000] * 2)
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
        elif p.startswith("/ws") and self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers["Sec-WebSocket-Key"]
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            self.echo()
            self.close_connection = True
        else:
            xff = self.headers.get("X-Forwarded-For", "-")
            fwd = self.headers.get("Forwarded", "-")
            self.reply(f"{NAME} {self.command} {p} xff={xff} fwd={fwd} proxy={self.proxy}\n")

    def do_DELETE(self):
        self.do_GET()

    def echo(self):
        r = self.rfile
        while True:
            h = r.read(2)
            if len(h) < 2:
                return
            op, n = h[0], h[1] & 0x7F
            if n == 126:
                n = int.from_bytes(r.read(2), "big")
            elif n == 127:
                n = int.from_bytes(r.read(8), "big")
            mask = r.read(4) if h[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(r.read(n)))
            if op & 0x0F == 8:
                return
            out = bytes([op]) + (bytes([len(data)]) if len(data) < 126 else b"\x7e" + len(data).to_bytes(2, "big")) + data
            self.wfile.write(out)
            self.wfile.flush()

    def body(self):
        h = hashlib.sha256()
        total = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    d = self.rfile.read(min(left, 65536))
                    h.update(d)
                    left -= len(d)
                total += size
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                d = self.rfile.read(min(left, 65536))
                if not d:
                    break
                h.update(d)
                total += len(d)
                left -= len(d)
        return h.hexdigest(), total

    def do_POST(self):
        digest, total = self.body()
        self.reply(f"{NAME} {digest} {total}\n")

    def do_PUT(self):
        self.do_POST()


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    # Both families on one socket (IPv4 clients appear IPv4-mapped), whatever bindv6only says.
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


srv = S(("::", PORT), H)
if len(sys.argv) > 4:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
