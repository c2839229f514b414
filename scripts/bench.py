#!/usr/bin/env python3
"""Whole-process benchmarks of mcp-credd against local servers on 127.0.0.1.

Prints figures; changes nothing outside a temporary directory. Run: bash scripts/bench.sh
  1. one-shot ingress run vs curl doing the same token POST (median of N, interleaved)
  2. idle daemon: resident memory, CPU time and wake-ups over a minute, 4 identities
  3. scale: 1,000 egress identities and 1,000 servers: first daemon pass (refresh all,
     bounded concurrency, render) and a one-shot render with valid tokens; peak memory
  4. side by side with pizauth (when PIZAUTH names its binary): both daemons holding one
     refreshable token from the same local provider, idle resident memory in the same run

pizauth is not built here: point PIZAUTH at a pizauth binary you built or installed.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "mcp-credd")
REPS = int(os.environ.get("BENCH_REPS", "21"))
IDLE_SECS = int(os.environ.get("BENCH_IDLE_SECS", "60"))
SCALE = int(os.environ.get("BENCH_SCALE", "1000"))
PIZAUTH = os.environ.get("PIZAUTH")
PEER_SECS = int(os.environ.get("BENCH_PEER_SECS", "30"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_idp(extra=None):
    p = subprocess.Popen(["node", "oidc-server.mjs"], cwd=os.path.join(ROOT, "tests", "idp"),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, "PORT": "0", "TOKEN_TTL": "3600", **(extra or {})})
    line = p.stdout.readline().split()
    assert line and line[0] == "READY", line
    return p, int(line[1])


def env_for(home):
    return {"HOME": home, "PATH": os.environ["PATH"], "SEC": "m2m-secret"}


def timed(cmd, env=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    d = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {r.stderr.decode()}")
    return d


def timed_peak(cmd, env=None):
    """Wall time and that process's own peak RSS (KiB), from wait4."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    d = time.perf_counter() - t
    if status != 0:
        sys.exit(f"{cmd[0]} failed: {p.stderr.read().decode()}")
    p.returncode = 0
    return d, ru.ru_maxrss


def write_config(home, text):
    d = os.path.join(home, ".config", "mcp-credd")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.yaml"), "w") as f:
        f.write(text)
    os.chmod(os.path.join(d, "config.yaml"), 0o600)


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        st = dict(l.split(":", 1) for l in f if ":" in l)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_kib = int(st["VmRSS"].split()[0])
    hwm_kib = int(st["VmHWM"].split()[0])
    switches = int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
    # Threads' switches too: the runtime's worker threads are where wake-ups happen.
    for tid in os.listdir(f"/proc/{pid}/task"):
        if tid == str(pid):
            continue
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                t = dict(l.split(":", 1) for l in f if ":" in l)
            switches += int(t["voluntary_ctxt_switches"]) + int(t["nonvoluntary_ctxt_switches"])
        except FileNotFoundError:
            pass
    return cpu, rss_kib, hwm_kib, switches


def wait_status(sock, needle, timeout):
    """Waits for a STATUS= notification containing `needle` (READY=1 no longer waits for
    the first refreshes: systemd's start job must not hang on a slow provider)."""
    end = time.time() + timeout
    while True:
        sock.settimeout(max(0.1, end - time.time()))
        for part in sock.recv(4096).decode().split("\n"):
            if part.startswith("STATUS=") and needle in part:
                return


def wait_ready(sock, timeout):
    sock.settimeout(timeout)
    while True:
        msg = sock.recv(4096).decode()
        if msg == "READY=1":
            return


def bench_oneshot(port):
    home = tempfile.mkdtemp()
    write_config(home, f"""ingress:
  kind: cognito_m2m
  user_pool_id: us-east-1_Bench
  client_id: m2m-client
  client_secret: {{env: SEC}}
  token_url: http://127.0.0.1:{port}/oauth2/token
servers:
  - name: currenttime
    url: https://gw.example.com/currenttime/mcp
""")
    env = env_for(home)
    curl = ["curl", "-s", "-o", "/dev/null", "-u", "m2m-client:m2m-secret",
            "-d", "grant_type=client_credentials", f"http://127.0.0.1:{port}/oauth2/token"]
    ours = [BIN, "--force", "--ingress-only", "-q"]
    for _ in range(3):  # warm up the provider and the page cache
        timed(curl)
        timed(ours, env)
    c, m = [], []
    for _ in range(REPS):
        c.append(timed(curl))
        m.append(timed(ours, env))
    cm, mm = statistics.median(c), statistics.median(m)
    print(f"one-shot ingress (median of {REPS}): curl {cm*1000:.1f} ms, mcp-credd {mm*1000:.1f} ms, "
          f"ratio {mm/cm:.2f} (target <= 1.25)")
    reuse = statistics.median(timed([BIN, "--ingress-only", "-q"], env) for _ in range(REPS))
    print(f"one-shot with a still-valid token (no network): {reuse*1000:.1f} ms")
    return home


def bench_idle(port):
    home = tempfile.mkdtemp()
    ids = "\n".join(f"""  svc{i}:
    kind: oidc_m2m
    client_id: m2m-client
    client_secret: {{env: SEC}}
    token_url: http://127.0.0.1:{port}/oauth2/token""" for i in range(3))
    write_config(home, f"""gateway_url: https://gw.example.com
ingress:
  kind: cognito_m2m
  user_pool_id: us-east-1_Bench
  client_id: m2m-client
  client_secret: {{env: SEC}}
  token_url: http://127.0.0.1:{port}/oauth2/token
identities:
{ids}
servers:
  - name: a
  - name: b
    url: https://b.example.com/mcp
    auth: {{identity: svc0}}
""")
    sock_path = os.path.join(home, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    env = {**env_for(home), "NOTIFY_SOCKET": sock_path}
    d = subprocess.Popen([BIN, "daemon", "-q"], env=env)
    try:
        wait_ready(sock, 30)
        time.sleep(2)
        cpu0, rss0, _, sw0 = proc_stats(d.pid)
        end = time.time() + IDLE_SECS
        peak = rss0
        while time.time() < end:
            time.sleep(1)
            try:
                while True:
                    sock.setblocking(False)
                    sock.recv(4096)
            except BlockingIOError:
                pass
            peak = max(peak, proc_stats(d.pid)[1])
        cpu1, rss1, _, sw1 = proc_stats(d.pid)
        print(f"idle daemon, 4 identities, {IDLE_SECS} s: RSS {rss1/1024:.1f} MiB (peak {peak/1024:.1f} MiB, "
              f"target: at or below pizauth), CPU {(cpu1-cpu0)*1000:.0f} ms, context switches {sw1-sw0} "
              f"({(sw1-sw0)*60/IDLE_SECS:.0f}/min; check interval 10 s)")
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(10)


class TokenHandler(BaseHTTPRequestHandler):
    """A minimal token endpoint for the scale run: any refresh token is good."""
    counter = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with TokenHandler.lock:
            TokenHandler.counter += 1
            n = TokenHandler.counter
        body = json.dumps({"access_token": f"at-{n}-" + "x" * 40, "token_type": "Bearer",
                           "expires_in": 3600, "refresh_token": f"rt-{n}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def bench_scale():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    home = tempfile.mkdtemp()
    egress = "\n".join(f"""  - name: p{i}
    provider: local
    client_id: c{i}
    client_secret: s
    server: server-{i}""" for i in range(SCALE))
    write_config(home, f"""gateway_url: https://gw.example.com
providers:
  local:
    display_name: Local
    authorize_url: http://127.0.0.1:{port}/authorize
    token_url: http://127.0.0.1:{port}/token
    scopes: [offline_access]
    pkce: true
    token_auth: basic
    refresh: rotating
egress:
{egress}
""")
    tokens = os.path.join(home, ".oauth-tokens")
    os.makedirs(tokens, mode=0o700)
    now = time.time()
    for i in range(SCALE):
        rec = {"provider": "local", "access_token": "old", "refresh_token": f"seed-{i}",
               "expires_at": now - 10, "expires_at_human": None, "client_id": f"c{i}",
               "obtained_at": now - 3610}
        path = os.path.join(tokens, f"local-server-{i}-egress.json")
        with open(path, "w") as f:
            json.dump(rec, f)
        os.chmod(path, 0o600)
    sock_path = os.path.join(home, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    env = {**env_for(home), "NOTIFY_SOCKET": sock_path}
    t = time.perf_counter()
    d = subprocess.Popen([BIN, "daemon", "-q"], env=env)
    try:
        wait_status(sock, f"{SCALE} of {SCALE} identities valid", 600)
        first = time.perf_counter() - t
        _, rss, hwm, _ = proc_stats(d.pid)
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(30)
    print(f"scale: {SCALE} egress identities and servers: daemon first pass (refresh all, "
          f"concurrency 8, render) {first*1000:.0f} ms, peak RSS {hwm/1024:.1f} MiB, {TokenHandler.counter} token requests")
    # Everything valid now: a one-shot only reads, plans and renders. Its own peak (wait4),
    # not the largest of all children (the daemon above was one).
    runs = [timed_peak([BIN, "-q"], env_for(home)) for _ in range(5)]
    print(f"scale: one-shot over {SCALE} valid identities (read, plan, render; no network): "
          f"{statistics.median(r[0] for r in runs)*1000:.0f} ms, "
          f"peak RSS {max(r[1] for r in runs)/1024:.1f} MiB (target <= 30)")
    srv.shutdown()


def drive_login(url):
    """Plays the user's part of the code flow (tests/idp/drive-login.mjs)."""
    r = subprocess.run(["node", os.path.join(ROOT, "tests", "idp", "drive-login.mjs"), url],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit(f"login failed: {r.stderr}")


def rss_parts(pid):
    """Resident memory split: anonymous (heap, stacks) and file-backed (the binary's and
    libraries' pages), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        st = dict(l.split(":", 1) for l in f if ":" in l)
    return int(st["RssAnon"].split()[0]), int(st["RssFile"].split()[0]), int(st["Threads"])


def bench_peer():
    """mcp-credd and pizauth side by side, each holding one refreshable token (code flow
    with PKCE and offline_access) from the same oidc-provider, idle for the same seconds."""
    credd_port, piz_port = free_port(), free_port()
    clients = [
        {"client_id": "credd-web", "client_secret": "credd-secret",
         "token_endpoint_auth_method": "client_secret_basic",
         "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
         "redirect_uris": [f"http://127.0.0.1:{credd_port}/callback"],
         "scope": "openid offline_access profile"},
        # pizauth sends its secret in the body.
        {"client_id": "piz-web", "client_secret": "piz-secret",
         "token_endpoint_auth_method": "client_secret_post",
         "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
         "redirect_uris": [f"http://127.0.0.1:{piz_port}/"],
         "scope": "openid offline_access profile"},
    ]
    idp, port = start_idp({"CLIENTS_JSON": json.dumps(clients)})
    base = f"http://127.0.0.1:{port}"
    procs = []
    try:
        # mcp-credd: one egress identity, logged in, then the daemon.
        home = tempfile.mkdtemp()
        write_config(home, f"""gateway_url: https://gw.example.com
providers:
  local:
    display_name: Local
    authorize_url: {base}/oauth2/authorize
    token_url: {base}/oauth2/token
    scopes: [openid, offline_access, profile]
    pkce: true
    token_auth: basic
    refresh: rotating
egress:
  - name: local
    provider: local
    client_id: credd-web
    client_secret: credd-secret
    redirect_uri: http://127.0.0.1:{credd_port}/callback
    server: tools
""")
        env = env_for(home)
        login = subprocess.Popen([BIN, "login", "local", "--no-browser", "--timeout", "30"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in login.stdout:
            if line.strip().startswith(base):
                drive_login(line.strip())
                break
        if login.wait(30) != 0:
            sys.exit("mcp-credd login failed")
        sock_path = os.path.join(home, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        credd = subprocess.Popen([BIN, "daemon", "-q"], env={**env, "NOTIFY_SOCKET": sock_path})
        procs.append(credd)
        wait_ready(sock, 30)

        # pizauth: the same provider, its own client; foreground (-d), sockets in a temp dir.
        phome = tempfile.mkdtemp()
        conf = os.path.join(phome, "pizauth.conf")
        with open(conf, "w") as f:
            f.write(f"""http_listen = "127.0.0.1:{piz_port}";
account "local" {{
    auth_uri = "{base}/oauth2/authorize";
    token_uri = "{base}/oauth2/token";
    client_id = "piz-web";
    client_secret = "piz-secret";
    scopes = ["openid", "offline_access", "profile"];
    redirect_uri = "http://127.0.0.1/";
}}
""")
        penv = {"HOME": phome, "PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": phome}
        piz = subprocess.Popen([PIZAUTH, "server", "-d", "-c", conf], env=penv,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(piz)
        url = None
        for _ in range(50):
            r = subprocess.run([PIZAUTH, "show", "local"], env=penv, capture_output=True, text=True)
            m = [w for w in r.stderr.split() if w.startswith(base)]
            if m:
                url = m[0]
                break
            time.sleep(0.2)
        if not url:
            sys.exit("pizauth printed no authorization URL")
        drive_login(url)
        for _ in range(50):
            r = subprocess.run([PIZAUTH, "show", "local"], env=penv, capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip():
                break
            time.sleep(0.2)
        else:
            sys.exit("pizauth holds no token after the login")
        with open(os.path.join(home, ".oauth-tokens", "local-tools-egress.json")) as f:
            rec = json.load(f)
        assert rec.get("refresh_token"), "mcp-credd holds no refresh token"

        # Both idle for the same seconds, sampled alternately.
        time.sleep(2)
        samples = {"credd": [], "piz": []}
        for _ in range(PEER_SECS):
            time.sleep(1)
            samples["credd"].append(proc_stats(credd.pid)[1])
            samples["piz"].append(proc_stats(piz.pid)[1])
        c, p = samples["credd"][-1], samples["piz"][-1]
        cmax, pmax = max(samples["credd"]), max(samples["piz"])
        print(f"side by side, one refreshable token each, idle {PEER_SECS} s: "
              f"mcp-credd RSS {c/1024:.1f} MiB (max {cmax/1024:.1f}), "
              f"pizauth RSS {p/1024:.1f} MiB (max {pmax/1024:.1f}); "
              f"ratio mcp-credd/pizauth {c/p:.2f} (target <= 1.00)")
        for name, proc in (("mcp-credd", credd), ("pizauth", piz)):
            anon, filed, threads = rss_parts(proc.pid)
            print(f"  {name}: anonymous {anon/1024:.1f} MiB, file-backed {filed/1024:.1f} MiB, "
                  f"{threads} threads, binary {os.path.getsize(BIN if proc is credd else PIZAUTH)/1024/1024:.1f} MiB")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        idp.terminate()
        idp.wait(10)


def main():
    size = os.path.getsize(BIN)
    print(f"release binary: {size/1024/1024:.2f} MiB ({BIN})")
    cold = statistics.median(timed([BIN, "--version"]) for _ in range(REPS))
    print(f"start-up (`mcp-credd --version`, median of {REPS}): {cold*1000:.1f} ms")
    idp, port = start_idp()
    try:
        bench_oneshot(port)
        bench_idle(port)
    finally:
        idp.terminate()
        idp.wait(10)
    bench_scale()
    if PIZAUTH:
        bench_peer()
    else:
        print("side by side with pizauth: skipped (set PIZAUTH=/path/to/pizauth to measure "
              "both daemons in this run; pizauth is not built here)")


if __name__ == "__main__":
    main()
