#!/usr/bin/python3
"""sms_peer.py - an SMS provider API for the tests of herald's http provider: records every
request as one JSON line and answers by path, as a generic SMS API or Twilio would.

Usage:
  sms_peer.py --log FILE [--port-file FILE] [--host 127.0.0.1] [--basic USER:PASS]...
              [--bearer TOKEN]... [--mode-file FILE] [--slow SECONDS]

  --log FILE        append one JSON line per request, written when the request has been read
                    (before any sleep), so a test sees it as soon as the client could
  --port-file FILE  write the port there once listening (FILE.tmp, then renamed)
  --basic U:P       credentials /secure/... and the Twilio path accept (repeatable)
  --bearer TOKEN    a bearer token /secure/... accepts (repeatable)
  --mode-file FILE  what /mode answers, one line per request: "CODE [RETRY_AFTER]" (e.g. "500",
                    "429 1", "201"), "sleep SECONDS" (then 201) or "echo" (as /echo400); 500
                    when unreadable. A line that is not the last is used once and removed, so
                    "429 1\n201" answers 429 once, then 201 from then on
  --slow SECONDS    how long /slow sleeps (default 3; the query's sleep=S wins)

Answers (any method):
  /ok        201 {"sid":"SM<32 hex>","status":"queued"}
  /nested    200 {"messages":[{"id":"MSG-<12 hex>","status":"0"}]}
  /text      200 text/plain "queued" (no JSON: no message id)
  /fail500   500                       /bad       400 {"code":21211,...}
  /echo400   400 whose body quotes the request body (a provider that echoes what it got)
  /limit     429 with Retry-After: 1 (the query's retry_after=V wins)
  /slow      sleeps, then as /ok       /mode      as the mode file says (2xx: as /ok)
  /seq/KEY/C1,C2,...   the n-th request for KEY gets Cn (the last repeats; 2xx: as /ok)
  /secure/PATH   as PATH when the Authorization header holds one of --basic or --bearer,
                 else 401 {"code":20003,"message":"Authenticate"}
  /2010-04-01/Accounts/SID/Messages.json   Twilio: basic auth with user SID and a --basic
                 password, else 401; then 201 {"sid":"SM...","account_sid":SID,"to","from","body"}
  anything else  404
  Every answer takes Retry-After from the query's retry_after=V too.

Log line fields: t, method, path (without the query), query, headers (lower-case names),
auth ({"scheme":"basic","user","password"}, {"scheme":"bearer","token"}, {"scheme":OTHER} or
null), body (text, UTF-8 with replacement), form (the [name, value] pairs of a form body, or of
the query for a GET; null otherwise), json (the body parsed, or null), status, answer (the
response body), id (the message id answered, or null).

Stops on SIGTERM or SIGINT.
"""
import argparse
import base64
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SEQ = {}
OPTS = None
LOGF = None
TWILIO = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")


def parse_auth(value):
    """The Authorization header VALUE decoded, or None."""
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, pw = base64.b64decode(rest.strip(), validate=True).decode().partition(":")
        except ValueError:
            return {"scheme": "basic", "invalid": True}
        return {"scheme": "basic", "user": user, "password": pw}
    if scheme.lower() == "bearer":
        return {"scheme": "bearer", "token": rest.strip()}
    return {"scheme": scheme}


def auth_ok(auth):
    """Whether AUTH is one of the configured credentials."""
    if auth is None:
        return False
    if auth["scheme"] == "basic" and "user" in auth:
        return "%s:%s" % (auth["user"], auth["password"]) in OPTS.basic
    if auth["scheme"] == "bearer":
        return auth["token"] in OPTS.bearer
    return False


def from_mode():
    """(status, retry_after or None, sleep seconds, echo) from the mode file's first line; a
    line that is not the last is used once (the file is rewritten without it)."""
    with LOCK:
        try:
            with open(OPTS.mode_file) as f:
                lines = [l for l in f.read().splitlines() if l.strip()]
        except (OSError, TypeError):
            lines = []
        if len(lines) > 1:
            with open(OPTS.mode_file + ".tmp", "w") as f:
                f.write("\n".join(lines[1:]) + "\n")
            os.rename(OPTS.mode_file + ".tmp", OPTS.mode_file)
    words = lines[0].split() if lines else []
    if words[:1] == ["sleep"] and len(words) == 2:
        return 201, None, float(words[1]), False
    if words == ["echo"]:
        return 400, None, 0.0, True
    if words and words[0].isdigit():
        return int(words[0]), (words[1] if len(words) > 1 else None), 0.0, False
    return 500, None, 0.0, False


def answer(path, q, auth, body, form):
    """(status, headers, response body, message id, sleep seconds) for a request."""
    hdrs = {"Content-Type": "application/json"}
    sleep = 0.0
    sid = "SM" + uuid.uuid4().hex
    if path.startswith("/secure/"):
        if not auth_ok(auth):
            return 401, hdrs, json.dumps({"code": 20003, "message": "Authenticate"}), None, 0
        path = path[len("/secure"):]
    m = TWILIO.match(path)
    if m:
        if auth is None or auth.get("user") != m.group(1) or not auth_ok(auth):
            return 401, hdrs, json.dumps({"code": 20003, "message": "Authenticate"}), None, 0
        f = dict(form or [])
        out = {"sid": sid, "account_sid": m.group(1), "status": "queued",
               "to": f.get("To"), "from": f.get("From"), "body": f.get("Body")}
        return 201, hdrs, json.dumps(out), sid, 0
    if path in ("/ok", "/slow"):
        status = 201
        if path == "/slow":
            sleep = OPTS.slow
    elif path == "/nested":
        mid = "MSG-" + uuid.uuid4().hex[:12]
        return 200, hdrs, json.dumps({"messages": [{"id": mid, "status": "0"}]}), mid, 0
    elif path == "/text":
        return 200, {"Content-Type": "text/plain"}, "queued", None, 0
    elif path == "/fail500":
        status = 500
    elif path == "/bad":
        return 400, hdrs, json.dumps({"code": 21211, "message": "invalid 'To' number"}), None, 0
    elif path == "/echo400":
        return 400, {"Content-Type": "text/plain"}, "rejected: " + body, None, 0
    elif path == "/limit":
        status = 429
        hdrs["Retry-After"] = "1"
    elif path == "/mode":
        status, ra, sleep, echo = from_mode()
        if echo:
            return 400, {"Content-Type": "text/plain"}, "rejected: " + body, None, 0
        if ra is not None:
            hdrs["Retry-After"] = ra
    elif path.startswith("/seq/") and path.count("/") == 3:
        _, _, key, seq = path.split("/")
        codes = [int(c) for c in seq.split(",") if c.isdigit()] or [404]
        with LOCK:
            n = SEQ.get(key, 0)
            SEQ[key] = n + 1
        status = codes[min(n, len(codes) - 1)]
    else:
        status = 404
    if "retry_after" in q:
        hdrs["Retry-After"] = q["retry_after"]
    if "sleep" in q:
        sleep = float(q["sleep"])
    if 200 <= status < 300:
        return status, hdrs, json.dumps({"sid": sid, "status": "queued"}), sid, sleep
    return status, hdrs, json.dumps({"error": "status %d" % status}), None, sleep


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "herald-test-sms-peer"

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        body = raw.decode("utf-8", "replace")
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        auth = parse_auth(headers.get("authorization"))
        form = None
        if self.command == "GET":
            form = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
        elif headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = urllib.parse.parse_qsl(body, keep_blank_values=True)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        status, extra, out, mid, sleep = answer(u.path, q, auth, body, form)
        rec = {"t": time.time(), "method": self.command, "path": u.path, "query": u.query,
               "headers": headers, "auth": auth, "body": body, "form": form, "json": parsed,
               "status": status, "answer": out, "id": mid}
        with LOCK:
            LOGF.write(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n")
            LOGF.flush()
        if sleep > 0:
            time.sleep(sleep)
        data = out.encode()
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global OPTS, LOGF
    ap = argparse.ArgumentParser(description="SMS provider API for herald's tests")
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--basic", action="append", default=[])
    ap.add_argument("--bearer", action="append", default=[])
    ap.add_argument("--mode-file")
    ap.add_argument("--slow", type=float, default=3.0)
    OPTS = ap.parse_args()
    LOGF = open(OPTS.log, "a", encoding="utf-8")
    srv = Server((OPTS.host, 0), Handler)
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
