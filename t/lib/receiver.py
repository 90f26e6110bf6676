#!/usr/bin/env python3
"""receiver.py - a webhook receiver for the tests: answers by path, logs every request as one
JSON line and checks Standard Webhooks signatures on its own (hmac, hashlib, base64 only).

Usage:
  receiver.py --log FILE [--port-file FILE] [--port N] [--host 127.0.0.1]
              [--secret S]... [--slow SECONDS] [--mode-file FILE] [--cert PEM --key PEM]

  --log FILE        append one JSON line per request (written when the request arrives, before
                    any sleep, so a test sees it as soon as the client could)
  --port-file FILE  write the port there once listening (atomically: FILE.tmp, then renamed);
                    without it the port is printed on stdout. --port 0 (default): a free port
  --secret S        a signing secret (repeat for a rotation): "whsec_<base64>" is base64-decoded,
                    anything else used as raw bytes, as herald does
  --slow SECONDS    how long /slow sleeps (default 3)
  --mode-file FILE  the answer of /mode, read at each request (a test changes it as it goes)
  --cert, --key     serve HTTPS with this certificate chain and key (PEM files)

Answers (any method; the query string tunes every path):
  /ok                 200              /fail400      400
  /busy               503              /limit        429 with Retry-After: 7
  /slow               sleeps --slow s, then 200
  /redirect           302 Location: /ok
  /status/NNN         status NNN (e.g. /status/404, /status/500)
  /mode               what --mode-file says now: "CODE [RETRY_AFTER]" (e.g. "500", "429 2",
                      "200") or "sleep SECONDS" (then 200); 500 when unreadable
  /seq/KEY/S1,S2,...  the n-th request for KEY gets Sn (the last one repeats): e.g.
                      /seq/a/503,200 answers 503 once, then 200
  anything else       404
  query: retry_after=V (Retry-After: V), sleep=S (sleep S seconds first), msgid=X
         (X-Message-Id: X), location=U (Location: U), body=TEXT (the response body)
The response body is {"ok":true} for 2xx and {"error":"..."} otherwise, unless body= is given.

Log line fields:
  t (unix time, float), method, path (without the query), query (string), headers (object,
  lower-case names; a repeated header's values joined by ", "), body (text, UTF-8 with
  replacement), json (the body parsed, or null), status (the answer chosen), sig_ok (true when
  one of the webhook-signature's v1 entries matches one of the secrets; false when none does or
  the header is missing; null when no --secret was given), sig_match (one boolean per --secret,
  in order: whether its signature is among the entries), sigs (the number of v1 entries).

Stops on SIGTERM or SIGINT.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SEQ = {}
OPTS = None
LOGF = None

FIXED = {
    "/ok": 200,
    "/fail400": 400,
    "/busy": 503,
    "/limit": 429,
    "/slow": 200,
    "/redirect": 302,
}


def secret_key(s):
    """The key bytes of secret S, as herald and the Standard Webhooks libraries decode it."""
    if s.startswith("whsec_"):
        b = s[len("whsec_"):]
        return base64.b64decode(b + "=" * (-len(b) % 4))
    return s.encode()


def expected_sig(key, msg_id, ts, body):
    mac = hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def check_sig(headers, body):
    """(sig_ok, sig_match, n) for the request's webhook-* headers against the secrets."""
    entries = [e.split(",", 1)[1] for e in headers.get("webhook-signature", "").split()
               if e.startswith("v1,") and "," in e]
    if not OPTS.secret:
        return None, [], len(entries)
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    match = []
    for s in OPTS.secret:
        want = expected_sig(secret_key(s), msg_id, ts, body)
        match.append(any(hmac.compare_digest(want, e) for e in entries))
    return any(match), match, len(entries)


def choose(path, q):
    """The status for PATH with query Q, and the extra headers."""
    hdrs = {}
    if path in FIXED:
        status = FIXED[path]
    elif path.startswith("/status/") and path[8:].isdigit():
        status = int(path[8:])
    elif path == "/mode":
        # the answer the test set in --mode-file: "CODE [RETRY_AFTER]" or "sleep SECONDS"
        try:
            with open(OPTS.mode_file) as f:
                words = f.read().split()
        except (OSError, TypeError):
            words = []
        if words[:1] == ["sleep"] and len(words) == 2:
            status, q["sleep"] = 200, words[1]
        elif words and words[0].isdigit():
            status = int(words[0])
            if len(words) > 1:
                hdrs["Retry-After"] = words[1]
        else:
            status = 500
    elif path.startswith("/seq/") and path.count("/") == 3:
        _, _, key, seq = path.split("/")
        codes = [int(c) for c in seq.split(",") if c.isdigit()] or [404]
        with LOCK:
            n = SEQ.get(key, 0)
            SEQ[key] = n + 1
        status = codes[min(n, len(codes) - 1)]
    else:
        status = 404
    if path == "/limit":
        hdrs["Retry-After"] = "7"
    if path == "/redirect":
        hdrs["Location"] = "/ok"
    if "retry_after" in q:
        hdrs["Retry-After"] = q["retry_after"]
    if "msgid" in q:
        hdrs["X-Message-Id"] = q["msgid"]
    if "location" in q:
        hdrs["Location"] = q["location"]
    return status, hdrs


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "herald-test-receiver"

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        status, extra = choose(u.path, q)
        sig_ok, sig_match, nsig = check_sig(headers, body)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        rec = {"t": time.time(), "method": self.command, "path": u.path, "query": u.query,
               "headers": headers, "body": body.decode("utf-8", "replace"), "json": parsed,
               "status": status, "sig_ok": sig_ok, "sig_match": sig_match, "sigs": nsig}
        with LOCK:
            LOGF.write(json.dumps(rec, sort_keys=True) + "\n")
            LOGF.flush()
        sleep = float(q.get("sleep", OPTS.slow if u.path == "/slow" else 0))
        if sleep > 0:
            time.sleep(sleep)
        if "body" in q:
            out = q["body"].encode()
        elif 200 <= status < 300:
            out = b'{"ok":true}'
        else:
            out = json.dumps({"error": "status %d" % status}).encode()
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


def main():
    global OPTS, LOGF
    ap = argparse.ArgumentParser(description="webhook receiver for herald's tests")
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--secret", action="append", default=[])
    ap.add_argument("--slow", type=float, default=3.0)
    ap.add_argument("--mode-file")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    OPTS = ap.parse_args()
    LOGF = open(OPTS.log, "a", encoding="utf-8")
    srv = Server((OPTS.host, OPTS.port), Handler)
    if OPTS.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(OPTS.cert, OPTS.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    port = srv.server_address[1]
    if OPTS.port_file:
        with open(OPTS.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.rename(OPTS.port_file + ".tmp", OPTS.port_file)
    else:
        print(port, flush=True)

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    LOGF.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
