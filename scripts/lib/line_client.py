# The client of the active-active tests, bench and demo: argv VIP TIMEOUT. On stdin,
# `open N` opens N connections to VIP:80, `round` sends a line on every live one and reads
# the answer. Each prints one JSON line: answers from the server the connection began on
# (`ok`), from another (`moved`), connections that failed since, by the server they began
# on (`lost`), answers by server (`names`), connections opened (`opened`).
import json, socket, sys
vip, timeout = sys.argv[1], float(sys.argv[2])
conns = []
def report(lost, opened=0):
    r = {"ok": 0, "moved": 0, "lost": lost, "names": {}, "opened": opened}
    live = [c for c in conns if c["alive"]]
    sent = []
    for c in live:
        try:
            c["s"].sendall(b"ping\n")
            sent.append(c)
        except OSError:
            c["alive"] = False
            lost[c["name"]] = lost.get(c["name"], 0) + 1
    for c in sent:
        try:
            line = c["f"].readline()
            if not line:
                raise EOFError()
            name = line.decode().strip()
            if c["name"] is None:
                c["name"] = name
            r["ok" if name == c["name"] else "moved"] += 1
            r["names"][name] = r["names"].get(name, 0) + 1
        except (OSError, EOFError):
            c["alive"] = False
            lost[str(c["name"])] = lost.get(str(c["name"]), 0) + 1
    print(json.dumps(r), flush=True)
for line in sys.stdin:
    w = line.split()
    if w and w[0] == "open":
        lost = {}
        n = 0
        for _ in range(int(w[1])):
            try:
                s = socket.create_connection((vip, 80), timeout=timeout)
                conns.append({"s": s, "f": s.makefile("rb"), "name": None, "alive": True})
                n += 1
            except OSError as e:
                lost["connect"] = lost.get("connect", 0) + 1
        report(lost, n)
    elif w and w[0] == "round":
        report({})
    else:
        break
