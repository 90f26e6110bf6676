#!/usr/bin/python3
"""apns_peer.py - an APNs look-alike for the tests: HTTP/2 over TLS (ALPN "h2") with python3-h2,
checking the ES256 provider token on its own with python3-cryptography and answering per device
token. Run it with /usr/bin/python3 (Debian's, which has h2 and cryptography).

Usage:
  apns_peer.py --log FILE --port-file FILE --cert PEM --key PEM --pubkey PEM [--slow SECONDS]
               [--team TEAM] [--kid KEY_ID]

  --log FILE        append one JSON line per request, written when the request has arrived
                    (before any sleep)
  --port-file FILE  write the port there once listening (FILE.tmp, then renamed)
  --cert, --key     the server's certificate chain and key
  --pubkey PEM      the EC P-256 public key provider tokens must verify with
  --team, --kid     when given, the token's iss and kid must be these too
  --slow SECONDS    how long "slow" tokens wait before answering (default 3)

Answers, by the device token of POST /3/device/TOKEN (a bad provider token answers 403
InvalidProviderToken whatever the device):
  ok...        200 with apns-id: the request's apns-id (a fresh UUID when it had none)
  gone...      410 {"reason":"Unregistered","timestamp":...}
  bad...       400 {"reason":"BadDeviceToken"}
  busyra...    429 {"reason":"TooManyRequests"} with Retry-After: 1 the first time, then 200
  busy...      429 {"reason":"TooManyRequests"} (no Retry-After, as APNs) the first time, then 200
  flaky...     503 {"reason":"ServiceUnavailable"} the first time for that token, then 200
  expired...   403 {"reason":"ExpiredProviderToken"} the first time for that token, then 200
  invalid...   403 {"reason":"InvalidProviderToken"}
  slow...      sleeps --slow seconds, then 200
  anything else 400 {"reason":"BadDeviceToken"}
Any other path: 404 {"reason":"BadPath"}; a method other than POST: 405 {"reason":"BadMethod"}.

Log line fields: t, conn (the connection's number, from 1), stream, method, path, token, headers
(lower-case names, pseudo-headers included), body (text), json (parsed or null), jwt (the
token's text or null), jwt_ok (the signature verifies with --pubkey and alg/kid/iss are as
expected), jwt_header, jwt_claims (decoded, or null), status.
Stops on SIGTERM or SIGINT.
"""
import argparse
import asyncio
import base64
import json
import os
import signal
import ssl
import sys
import time
import uuid

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

OPTS = None
PUBKEY = None
SEEN = {}          # token -> requests so far
CONNS = [0]


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_jwt(auth):
    """(jwt, ok, header, claims) of an authorization header value"""
    if not auth or not auth.startswith("bearer "):
        return None, False, None, None
    tok = auth[len("bearer "):]
    parts = tok.split(".")
    if len(parts) != 3:
        return tok, False, None, None
    try:
        header = json.loads(b64url_dec(parts[0]))
        claims = json.loads(b64url_dec(parts[1]))
        sig = b64url_dec(parts[2])
    except ValueError:
        return tok, False, None, None
    ok = len(sig) == 64 and header.get("alg") == "ES256"
    if ok:
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            PUBKEY.verify(der, (parts[0] + "." + parts[1]).encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            ok = False
    if OPTS.kid is not None and header.get("kid") != OPTS.kid:
        ok = False
    if OPTS.team is not None and claims.get("iss") != OPTS.team:
        ok = False
    if not isinstance(claims.get("iat"), int):
        ok = False
    return tok, ok, header, claims


def choose(token, jwt_ok, headers):
    """(status, reason or None, sleep seconds) for a request to TOKEN"""
    n = SEEN.get(token, 0)
    SEEN[token] = n + 1
    if not jwt_ok:
        return 403, "InvalidProviderToken", 0
    if "apns-topic" not in headers:
        return 400, "MissingTopic", 0
    if token.startswith("ok"):
        return 200, None, 0
    if token.startswith("gone"):
        return 410, "Unregistered", 0
    if token.startswith("busy"):
        return (429, "TooManyRequests", 0) if n == 0 else (200, None, 0)
    if token.startswith("flaky"):
        return (503, "ServiceUnavailable", 0) if n == 0 else (200, None, 0)
    if token.startswith("expired"):
        return (403, "ExpiredProviderToken", 0) if n == 0 else (200, None, 0)
    if token.startswith("invalid"):
        return 403, "InvalidProviderToken", 0
    if token.startswith("slow"):
        return 200, None, OPTS.slow
    return 400, "BadDeviceToken", 0


class Peer(asyncio.Protocol):
    def __init__(self):
        CONNS[0] += 1
        self.num = CONNS[0]
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.streams = {}
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        alpn = transport.get_extra_info("ssl_object").selected_alpn_protocol()
        if alpn != "h2":
            print("apns_peer: connection %d without ALPN h2 (%r)" % (self.num, alpn),
                  file=sys.stderr)
            transport.close()
            return
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data):
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.streams[ev.stream_id] = [dict(ev.headers), bytearray()]
            elif isinstance(ev, h2.events.DataReceived):
                if ev.stream_id in self.streams:
                    self.streams[ev.stream_id][1] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                st = self.streams.pop(ev.stream_id, None)
                if st is not None:
                    asyncio.get_event_loop().create_task(self.handle(ev.stream_id, *st))
            elif isinstance(ev, h2.events.StreamReset):
                self.streams.pop(ev.stream_id, None)
        self.flush()

    def connection_lost(self, exc):
        self.transport = None

    async def handle(self, sid, headers, body):
        path = headers.get(":path", "")
        method = headers.get(":method", "")
        token = path[len("/3/device/"):] if path.startswith("/3/device/") else None
        jwt, jwt_ok, jh, jc = check_jwt(headers.get("authorization"))
        text = body.decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if method != "POST":
            status, reason, sleep = 405, "BadMethod", 0
        elif token is None or token == "":
            status, reason, sleep = 404, "BadPath", 0
        else:
            status, reason, sleep = choose(token, jwt_ok, headers)
        rec = {"t": time.time(), "conn": self.num, "stream": sid, "method": method, "path": path,
               "token": token, "headers": headers, "body": text, "json": parsed, "jwt": jwt,
               "jwt_ok": jwt_ok, "jwt_header": jh, "jwt_claims": jc, "status": status}
        with open(OPTS.log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if sleep:
            await asyncio.sleep(sleep)
        rh = [(":status", str(status))]
        out = b""
        if status == 200:
            rh.append(("apns-id", headers.get("apns-id") or str(uuid.uuid4())))
        else:
            rh.append(("apns-id", headers.get("apns-id") or str(uuid.uuid4())))
            rh.append(("content-type", "application/json"))
            doc = {"reason": reason}
            if status == 410:
                doc["timestamp"] = int(time.time() * 1000)
            out = json.dumps(doc).encode()
            if status == 429 and headers.get(":path", "").startswith("/3/device/busyra"):
                rh.append(("retry-after", "1"))
        rh.append(("content-length", str(len(out))))
        if self.transport is None:
            return
        try:
            self.conn.send_headers(sid, rh, end_stream=not out)
            if out:
                self.conn.send_data(sid, out, end_stream=True)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        self.flush()


def main():
    global OPTS, PUBKEY
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--pubkey", required=True)
    ap.add_argument("--slow", type=float, default=3.0)
    ap.add_argument("--team")
    ap.add_argument("--kid")
    OPTS = ap.parse_args()
    with open(OPTS.pubkey, "rb") as f:
        PUBKEY = serialization.load_pem_public_key(f.read())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(OPTS.cert, OPTS.key)
    ctx.set_alpn_protocols(["h2"])
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(Peer, "127.0.0.1", 0, ssl=ctx))
    port = server.sockets[0].getsockname()[1]
    with open(OPTS.port_file + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(OPTS.port_file + ".tmp", OPTS.port_file)
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, loop.stop)
    loop.run_forever()
    server.close()


if __name__ == "__main__":
    main()
