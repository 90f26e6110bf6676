#!/usr/bin/python3
"""fcm_peer.py - a local stand-in for Google's OAuth token endpoint and the FCM HTTP v1 API
(for t/fcm.t); plain HTTP on 127.0.0.1, one thread per connection.

Token endpoint: POST /token (and /token/bad: always 400 invalid_grant; /token/down: always 503).
The form must be grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT; the JWT's
RS256 signature is verified with --pubkey (python3-cryptography), its header must be
{alg RS256, typ JWT, kid --kid} and its claims {iss --iss, scope FCM's, aud the URL it was posted
to, iat about now, exp iat + 3600}. A good one gets {"access_token","expires_in","token_type"};
expires_in is --expires-in (default 3600), changed with POST /ctl?expires_in=N. A bad one gets
400 invalid_grant with the reason. The server enforces the expiry of its tokens.

Send endpoint: POST /v1/projects/PROJECT/messages:send with Authorization: Bearer TOKEN (a
token this peer issued and that has not expired, else 401 UNAUTHENTICATED). The answer depends on
the device token's prefix: "ok" 200 {"name"}; "gone" 404 NOT_FOUND with errorCode UNREGISTERED;
"bad" 400 INVALID_ARGUMENT; "busy" 429 Retry-After 1 the first time for that device token, then
200; "err" 500 INTERNAL; "slow" sleeps --slow seconds, then 200; anything else 200.
POST /ctl?reject_next=1: the next send is answered 401 and its bearer token revoked.
GET /stats: {"token_requests": N, "tokens_issued": N, "sends": N}.

Every request is logged as one JSON line to --log: {"kind": "token"|"send", "path", "status",
...}; a token line has "ok", "why", "header", "claims"; a send line "headers" (lower-case names),
"json" (the parsed body) and "bearer_ok".
"""
import argparse
import base64
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

lock = threading.Lock()
state = {"token_requests": 0, "tokens_issued": 0, "sends": 0, "expires_in": 3600,
         "reject_next": False, "busy_seen": set(), "tokens": {}}


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_assertion(jwt, aud):
    """(ok, why, header, claims) for the assertion JWT posted to AUD"""
    parts = jwt.split(".")
    if len(parts) != 3:
        return False, "not a compact JWS", None, None
    try:
        header = json.loads(b64d(parts[0]))
        claims = json.loads(b64d(parts[1]))
        sig = b64d(parts[2])
    except (ValueError, json.JSONDecodeError) as e:
        return False, "undecodable: %s" % e, None, None
    if header.get("alg") != "RS256" or header.get("typ") != "JWT":
        return False, "header alg/typ", header, claims
    if args.kid is not None and header.get("kid") != args.kid:
        return False, "header kid", header, claims
    try:
        pubkey.verify(sig, (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(),
                      hashes.SHA256())
    except InvalidSignature:
        return False, "Invalid JWT Signature.", header, claims
    now = time.time()
    if claims.get("iss") != args.iss:
        return False, "iss", header, claims
    if claims.get("scope") != SCOPE:
        return False, "scope", header, claims
    if claims.get("aud") != aud:
        return False, "aud %r, expected %r" % (claims.get("aud"), aud), header, claims
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        return False, "iat/exp not integers", header, claims
    if abs(iat - now) > 60 or exp - iat != 3600 or exp <= now:
        return False, "iat/exp", header, claims
    return True, "", header, claims


def log(rec):
    with lock:
        with open(args.log, "a") as f:
            f.write(json.dumps(rec) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def answer(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/stats":
            with lock:
                self.answer(200, {k: state[k] for k in ("token_requests", "tokens_issued", "sends")})
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/ctl":
            q = urllib.parse.parse_qs(u.query)
            with lock:
                if "expires_in" in q:
                    state["expires_in"] = int(q["expires_in"][0])
                if "reject_next" in q:
                    state["reject_next"] = True
            self.answer(200, {"ok": True})
        elif u.path.startswith("/token"):
            self.token(u.path, raw)
        elif u.path.startswith("/v1/projects/") and u.path.endswith("/messages:send"):
            self.send(u.path, raw)
        else:
            self.answer(404, {"error": "not found"})

    def token(self, path, raw):
        form = urllib.parse.parse_qs(raw.decode("ascii", "replace"))
        aud = "http://127.0.0.1:%d%s" % (self.server.server_address[1], path)
        rec = {"kind": "token", "path": path,
               "content_type": self.headers.get("Content-Type")}
        with lock:
            state["token_requests"] += 1
        if form.get("grant_type") != [GRANT] or len(form.get("assertion", [])) != 1:
            ok, why, h, c = False, "grant_type/assertion", None, None
        else:
            ok, why, h, c = check_assertion(form["assertion"][0], aud)
        rec.update(ok=ok, why=why, header=h, claims=c)
        if path == "/token/down":
            rec["status"] = 503
            log(rec)
            return self.answer(503, {"error": "temporarily_unavailable"})
        if not ok or path == "/token/bad":
            rec["status"] = 400
            log(rec)
            return self.answer(400, {"error": "invalid_grant",
                                     "error_description": why or "Invalid grant: account not found"})
        tok = "ya29.test-" + secrets.token_urlsafe(24)
        with lock:
            life = state["expires_in"]
            state["tokens"][tok] = time.time() + life
            state["tokens_issued"] += 1
        rec.update(status=200, expires_in=life)
        log(rec)
        self.answer(200, {"access_token": tok, "expires_in": life, "token_type": "Bearer"})

    def send(self, path, raw):
        auth = self.headers.get("Authorization") or ""
        bearer = auth[7:] if auth.startswith("Bearer ") else None
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        with lock:
            state["sends"] += 1
            until = state["tokens"].get(bearer)
            bearer_ok = until is not None and until > time.time()
            reject = bearer_ok and state["reject_next"]
            if reject:
                state["reject_next"] = False
                del state["tokens"][bearer]
        rec = {"kind": "send", "path": path, "bearer_ok": bearer_ok and not reject,
               "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"},
               "json": body}
        if not bearer_ok or reject:
            rec["status"] = 401
            log(rec)
            return self.answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                               "message": "Request had invalid authentication credentials."}})
        device = ((body or {}).get("message") or {}).get("token") or ""
        project = path.split("/")[3]
        status, ans, hdrs = 200, {"name": "projects/%s/messages/%d" % (project, state["sends"])}, []
        if device.startswith("gone"):
            status, ans = 404, {"error": {"code": 404, "status": "NOT_FOUND",
                                          "message": "Requested entity was not found.",
                                          "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                                       "errorCode": "UNREGISTERED"}]}}
        elif device.startswith("bad"):
            status, ans = 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                          "message": "The registration token is not a valid FCM registration token",
                                          "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                                       "errorCode": "INVALID_ARGUMENT"}]}}
        elif device.startswith("busy"):
            with lock:
                first = device not in state["busy_seen"]
                state["busy_seen"].add(device)
            if first:
                status, hdrs = 429, [("Retry-After", "1")]
                ans = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded.",
                                 "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                              "errorCode": "QUOTA_EXCEEDED"}]}}
        elif device.startswith("err"):
            status, ans = 500, {"error": {"code": 500, "status": "INTERNAL", "message": "Internal error."}}
        elif device.startswith("slow"):
            time.sleep(args.slow)
        rec["status"] = status
        log(rec)
        try:
            self.answer(status, ans, hdrs)
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    global args, pubkey
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--pubkey", required=True)
    ap.add_argument("--iss", required=True)
    ap.add_argument("--kid")
    ap.add_argument("--expires-in", type=int, default=3600)
    ap.add_argument("--slow", type=float, default=4)
    args = ap.parse_args()
    with open(args.pubkey, "rb") as f:
        pubkey = serialization.load_pem_public_key(f.read())
    state["expires_in"] = args.expires_in
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
