/// The Python programs behind the fixtures, run as `python3 -c` so no resource files need declaring.

/// A real SMTP server (aiosmtpd, PyPI) on 127.0.0.1.
///
/// Arguments: one JSON object with `dir` (where messages are recorded), `port` (0 for any), `tls`
/// (`none` | `starttls` | `implicit`), `cert`/`key` (PEM files for TLS), `auth` (`{user, password}` or null:
/// then AUTH is required). Each accepted message becomes `dir/NNNN.eml` (the bytes after DATA) and
/// `dir/NNNN.json` (`mail_from`, `rcpt_tos`, `auth_user`, `tls`), both written by rename. Every connection
/// bumps `dir/connections`. Faults come from `dir/mode.json`, read at each step: `hang` (accept connections and
/// say nothing, not even the greeting), `reject_rcpt` (addresses answered `550`), `tempfail_rcpt` (`451`),
/// `drop_after_data` (close the connection instead of answering the end of DATA, that many times; the message
/// is still recorded, with `dropped: true`). Prints the port, exits when stdin closes.
let smtpServerScript = #"""
    import asyncio, json, os, ssl, sys, threading
    from aiosmtpd.smtp import SMTP, AuthResult

    config = json.loads(sys.argv[1])
    directory = config["dir"]
    state = {"count": 0, "connections": 0, "dropped": 0}
    silent = []

    def mode():
        try:
            with open(os.path.join(directory, "mode.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def write(name, data):
        tmp = os.path.join(directory, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(directory, name))

    def connected():
        state["connections"] += 1
        write("connections", str(state["connections"]).encode())

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            m = mode()
            if address in m.get("reject_rcpt", []):
                return "550 5.1.1 <%s>: no such user here" % address
            if address in m.get("tempfail_rcpt", []):
                return "451 4.3.0 try again later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            m = mode()
            state["count"] += 1
            name = "%04d" % state["count"]
            tls = bool(server.transport.get_extra_info("ssl_object")) or bool(session.ssl)
            auth = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
            drop = state["dropped"] < int(m.get("drop_after_data", 0))
            meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "auth_user": auth, "tls": tls,
                    "dropped": drop}
            write(name + ".eml", envelope.original_content)
            write(name + ".json", json.dumps(meta).encode())
            if drop:
                state["dropped"] += 1
                server.transport.abort()
                return "250 never sent"
            return "250 2.0.0 Ok: queued as %s" % name

    def authenticator(server, session, envelope, mechanism, auth_data):
        wanted = config.get("auth")
        ok = wanted is not None and auth_data.login.decode() == wanted["user"] \
            and auth_data.password.decode() == wanted["password"]
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    class Silent(asyncio.Protocol):
        def connection_made(self, transport):
            silent.append(transport)

    async def main():
        loop = asyncio.get_running_loop()
        context = None
        if config["tls"] != "none":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(config["cert"], config["key"])
        auth = config.get("auth") is not None

        def factory():
            connected()
            if mode().get("hang"):
                return Silent()
            return SMTP(
                Handler(), hostname="fixture.smtp.test", loop=loop,
                tls_context=context if config["tls"] == "starttls" else None,
                require_starttls=config["tls"] == "starttls",
                authenticator=authenticator if auth else None, auth_required=auth,
                auth_require_tls=config["tls"] == "starttls")

        server = await loop.create_server(
            factory, "127.0.0.1", int(config.get("port", 0)), reuse_address=True,
            ssl=context if config["tls"] == "implicit" else None)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    asyncio.run(main())
    """#

/// A recording HTTP server on 127.0.0.1: a Twilio-compatible SMS gateway double and a chat webhook double.
///
/// Arguments: JSON with `dir`, `port` (0 for any), `user`/`password` (the gateway's Basic auth). Every
/// request is appended to `dir/requests.jsonl` (`method`, `path`, `headers` lower-cased, `body`, `auth_user`,
/// `auth_ok`). `POST .../Messages.json` answers 401 for wrong credentials, 400 (code 21211) for a `To` listed in
/// `dir/mode.json` `invalid_numbers`, else 201 with `{"sid": "SM..."}`. Any other `POST` (the chat webhook)
/// answers 200 `ok`, or `mode.json` `chat_status` when set. Prints the port, exits when stdin closes.
let httpRecorderScript = #"""
    import base64, json, os, sys, threading, uuid
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs

    config = json.loads(sys.argv[1])
    directory = config["dir"]
    lock = threading.Lock()

    def mode():
        try:
            with open(os.path.join(directory, "mode.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            user, password = None, None
            header = self.headers.get("Authorization") or ""
            if header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            auth_ok = user == config.get("user") and password == config.get("password")
            record = {"method": self.command, "path": self.path,
                      "headers": {k.lower(): v for k, v in self.headers.items()},
                      "body": body.decode("utf-8", "replace"), "auth_user": user, "auth_ok": auth_ok}
            with lock:
                with open(os.path.join(directory, "requests.jsonl"), "a") as f:
                    f.write(json.dumps(record) + "\n")
            m = mode()
            if self.path.endswith("/Messages.json"):
                if not auth_ok:
                    return self.reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                form = parse_qs(body.decode(), keep_blank_values=True)
                to = form.get("To", [""])[0]
                if to in m.get("invalid_numbers", []):
                    return self.reply(400, {"code": 21211, "status": 400,
                                            "message": "The 'To' number %s is not a valid phone number." % to})
                return self.reply(201, {"sid": "SM" + uuid.uuid4().hex, "status": "queued", "to": to})
            status = int(m.get("chat_status", 200))
            self.reply(status, b"ok" if status == 200 else b"no_service", "text/plain")

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    server = ThreadingHTTPServer(("127.0.0.1", int(config.get("port", 0))), Handler)
    server.daemon_threads = True
    threading.Thread(target=watch_stdin, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """#

/// Parses a message with Python's `email` package and its `text/calendar` parts with `icalendar` (PyPI).
///
/// Argument: the path of an `.eml` file. Prints JSON: `headers` (name → value, decoded from RFC 2047),
/// `content_type`, `parts` (each `content_type`, `params`, `encoding`, `text` decoded), `defects`, and for each
/// calendar part `calendars[]` with `method`, `raw_lines_ok` (every line ≤ 75 octets and CRLF-terminated),
/// and the event's `uid`, `sequence`, `dtstart`, `dtstamp`, `duration_seconds`, `summary`, `description`, `location`, `url`,
/// `status`, `organizer`, `attendees` (`address`, `params`).
let mailInspectorScript = #"""
    import email, json, sys
    from email import policy
    from icalendar import Calendar

    with open(sys.argv[1], "rb") as f:
        raw = f.read()
    message = email.message_from_bytes(raw, policy=policy.default)
    out = {"headers": {k: str(v) for k, v in message.items()}, "content_type": message.get_content_type(),
           "defects": [str(d) for d in message.defects], "parts": [], "calendars": []}
    for part in message.walk():
        if part.is_multipart():
            continue
        text = part.get_content()
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        params = {k: v for k, v in part.get_params() or []}
        out["parts"].append({"content_type": part.get_content_type(), "params": params,
                             "encoding": part.get("Content-Transfer-Encoding"), "text": text,
                             "defects": [str(d) for d in part.defects]})
        if part.get_content_type() == "text/calendar":
            data = part.get_payload(decode=True)
            lines = data.split(b"\r\n")
            raw_ok = data.endswith(b"\r\n") and all(len(l) <= 75 and b"\n" not in l for l in lines)
            cal = Calendar.from_ical(data)
            events = []
            for ev in cal.walk("VEVENT"):
                attendees = ev.get("ATTENDEE")
                if attendees is not None and not isinstance(attendees, list):
                    attendees = [attendees]
                events.append({
                    "uid": str(ev.get("UID")), "sequence": int(ev.get("SEQUENCE", 0)),
                    "dtstart": ev.decoded("DTSTART").isoformat(), "dtstamp": ev.decoded("DTSTAMP").isoformat(),
                    "duration_seconds": int(ev.decoded("DURATION").total_seconds()) if ev.get("DURATION") else None,
                    "summary": str(ev.get("SUMMARY")), "description": str(ev.get("DESCRIPTION")),
                    "location": str(ev.get("LOCATION")), "url": str(ev.get("URL")), "status": str(ev.get("STATUS")),
                    "organizer": str(ev.get("ORGANIZER")),
                    "organizer_cn": str(ev.get("ORGANIZER").params.get("CN")),
                    "attendees": [{"address": str(a), "params": dict(a.params)} for a in (attendees or [])],
                })
            out["calendars"].append({"method": str(cal.get("METHOD")), "raw_lines_ok": raw_ok, "events": events})
    print(json.dumps(out))
    """#
