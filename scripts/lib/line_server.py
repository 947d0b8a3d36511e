# A real server for the active-active tests, bench and demo: a line in, its name (argv[1])
# out, on every connection to port 80, for as long as it lasts (IPv4 and IPv6). Prints
# `ready` once listening.
import socket, sys, threading
name = sys.argv[1].encode() + b"\n"
srv = socket.socket(socket.AF_INET6)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.bind(("::", 80))
srv.listen(1024)
def serve(c):
    try:
        for _ in c.makefile("rb"):
            c.sendall(name)
    except OSError:
        pass
    c.close()
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
