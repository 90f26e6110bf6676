#!/usr/bin/python3
# smtp_sink.py - a real SMTP server for the tests (aiosmtpd; run it with Debian's /usr/bin/python3)
#
# Listens on 127.0.0.1 (an ephemeral port, written to --port-file once it listens) and writes
# each message it accepts as one JSON line to --log:
#   {"mail_from", "rcpt_tos", "data_b64" (the raw message bytes), "tls", "auth_user", "n"}
# Every RCPT TO is also logged as {"rcpt", "code"} so refused recipients can be counted.
# Options:
#   --cert F --key F       offer STARTTLS with this certificate
#   --require-starttls     refuse every command but EHLO/NOOP/QUIT/STARTTLS before TLS
#   --implicit-tls         TLS from the first byte with --cert/--key (smtps://), no STARTTLS
#   --user U --password P  offer AUTH LOGIN and PLAIN and accept only U/P (535 otherwise);
#                          with --auth-required, MAIL FROM needs AUTH first
#   --rcpt ADDR=CODES      answer RCPT TO ADDR with the codes CODES in turn (e.g. 451,250; the
#                          last one repeats); 550 says the mailbox is unknown, 451 try later
#   --default-rcpt CODES   the same for every other recipient (default 250)
#   --data ADDR=CODES      answer the end of data of a message to ADDR with CODES in turn
#                          (e.g. 451,250); the message is logged either way, with "code"
import argparse
import asyncio
import base64
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

REPLIES = {
    250: "250 2.1.5 OK",
    451: "451 4.3.0 Temporary failure, try again later",
    452: "452 4.2.2 Mailbox full",
    550: "550 5.1.1 Recipient address rejected: User unknown",
    551: "551 5.1.6 User not local",
    553: "553 5.1.3 Bad recipient address syntax",
    554: "554 5.7.1 Relay access denied",
}


def parse_codes(s):
    return [int(x) for x in s.split(",") if x.strip()]


class Sink:
    def __init__(self, args):
        self.log = open(args.log, "a", buffering=1, encoding="utf-8")
        self.rules = {}
        for r in args.rcpt:
            addr, _, codes = r.rpartition("=")
            self.rules[addr.lower()] = parse_codes(codes)
        self.default = parse_codes(args.default_rcpt)
        self.data_rules = {}
        for r in args.data:
            addr, _, codes = r.rpartition("=")
            self.data_rules[addr.lower()] = parse_codes(codes)
        self.seen = {}
        self.data_seen = {}
        self.n = 0

    def write(self, obj):
        self.log.write(json.dumps(obj, sort_keys=True) + "\n")

    def code_for(self, addr):
        codes = self.rules.get(addr.lower(), self.default)
        i = self.seen.get(addr.lower(), 0)
        self.seen[addr.lower()] = i + 1
        return codes[min(i, len(codes) - 1)]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.code_for(address)
        self.write({"rcpt": address, "code": code})
        if code != 250:
            return REPLIES.get(code, "%d %d.0.0 Refused by the test sink" % (code, code // 100))
        envelope.rcpt_tos.append(address)
        return REPLIES[250]

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        code = 250
        key = envelope.rcpt_tos[0].lower() if envelope.rcpt_tos else ""
        if key in self.data_rules:
            i = self.data_seen.get(key, 0)
            self.data_seen[key] = i + 1
            codes = self.data_rules[key]
            code = codes[min(i, len(codes) - 1)]
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self.write({
            "n": self.n,
            "code": code,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data_b64": base64.b64encode(data).decode("ascii"),
            "tls": (session.ssl is not None or
                    server.transport.get_extra_info("ssl_object") is not None),
            "auth_user": (session.auth_data.login.decode("utf-8", "replace")
                          if isinstance(session.auth_data, LoginPassword) else None),
        })
        if code != 250:
            return "%d %d.3.0 Not now (test sink)" % (code, code // 100)
        return "250 2.0.0 Ok: queued as SINK%d" % self.n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--require-starttls", action="store_true")
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--auth-required", action="store_true")
    ap.add_argument("--rcpt", action="append", default=[])
    ap.add_argument("--default-rcpt", default="250")
    ap.add_argument("--data", action="append", default=[])
    args = ap.parse_args()

    sink = Sink(args)
    ctx = None
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and
              auth_data.login == (args.user or "").encode() and
              auth_data.password == (args.password or "").encode())
        sink.write({"auth": mechanism, "ok": ok})
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def factory():
        kw = dict(hostname="sink.test", decode_data=False,
                  tls_context=None if args.implicit_tls else ctx,
                  require_starttls=args.require_starttls)
        if args.user is not None:
            kw.update(authenticator=authenticator, auth_required=args.auth_required,
                      auth_require_tls=False)
        return SMTP(sink, **kw)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        factory, "127.0.0.1", 0, ssl=ctx if args.implicit_tls else None))
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, args.port_file)
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        sink.log.close()


if __name__ == "__main__":
    sys.exit(main())
