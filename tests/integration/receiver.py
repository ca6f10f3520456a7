"""A GP software's notification endpoint for the black-box tests, written from
the FHIR R4 rest-hook rules alone (standard library ssl and http.server, no
gateway code): HTTPS that requires a client certificate signed by the
development CA, records every POST it gets (path, headers, body, the client
certificate's subject, arrival time) and answers the status it is told to."""

import http.server
import json
import os
import ssl
import threading
import time

CERTS = os.path.join(os.path.dirname(__file__), "..", "..", "certs", "dev")


class Notification:
    """One POST as received."""

    def __init__(self, path, headers, body, client_cn, at):
        self.path = path
        self.headers = headers
        self.body = body
        self.client_cn = client_cn
        self.at = at

    def bundle(self):
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def status(self):
        """The status Parameters of a Backport notification Bundle, as a dict."""
        params = self.bundle()["entry"][0]["resource"]["parameter"]
        out = {}
        for p in params:
            value = [v for k, v in p.items() if k.startswith("value")]
            out[p["name"]] = value[0] if value else {q["name"]: [v for k, v in q.items()
                                                                 if k.startswith("value")][0]
                                                     for q in p["part"]}
        return out

    def kind(self):
        return self.status()["type"]

    def events(self):
        """The events this notification reports, in order (one or more)."""
        entries = self.bundle()["entry"]
        params = entries[0]["resource"]["parameter"]
        numbers = [int([q["valueString"] for q in p["part"] if q["name"] == "event-number"][0])
                   for p in params if p["name"] == "notification-event"]
        focus = [e.get("resource") for e in entries[1:]]
        return [Event(self, number, focus[i] if i < len(focus) else None)
                for i, number in enumerate(numbers)]

    def __repr__(self):
        return "<Notification %s %d bytes>" % (self.path, len(self.body))


class Event:
    """One event of a notification: its number and the version that changed."""

    def __init__(self, notification, number, focus):
        self.notification = notification
        self.number = number
        self.resource = focus

    def event_number(self):
        return self.number

    def focus(self):
        return self.resource

    def __getattr__(self, name):  # path, headers, client_cn, at, status(), bundle()...
        return getattr(self.notification, name)


class Receiver:
    """An HTTPS endpoint on 127.0.0.1 that requires a client certificate."""

    def __init__(self, port=0, status=200, ca="ca.pem"):
        self.port = port
        self.status = status  # what every POST is answered
        self.ca = os.path.join(CERTS, ca)
        self.received = []
        self.refused_handshakes = 0
        self.lock = threading.Lock()
        self.server = None

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                cert = self.connection.getpeercert() or {}
                cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
                with receiver.lock:
                    receiver.received.append(Notification(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        cn[0] if cn else None, time.time()))
                    status = receiver.status
                self.send_response(status)
                if 300 <= status < 400:  # a redirect to a path that records itself
                    self.send_header("Location", receiver.url("/redirected"))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                with receiver.lock:
                    receiver.refused_handshakes += 1

            def finish_request(self, request, client_address):
                try:
                    request.do_handshake()
                except (ssl.SSLError, OSError):
                    with receiver.lock:
                        receiver.refused_handshakes += 1
                    return
                super().finish_request(request, client_address)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(CERTS, "receiver.pem"), os.path.join(CERTS, "receiver.key"))
        ctx.verify_mode = ssl.CERT_REQUIRED  # the gateway must present its client certificate
        ctx.load_verify_locations(self.ca)
        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                             do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self, path="/fhir-notify"):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def on(self, path):
        with self.lock:
            return [n for n in self.received if n.path == path]

    def events(self, path):
        """Every event received on path, in arrival order (a notification may carry several)."""
        return [e for n in self.on(path) if n.body and n.kind() == "event-notification"
                for e in n.events()]

    def wait_for(self, fn, timeout=20, step=0.05):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = fn()
            if value:
                return value
            time.sleep(step)
        return fn()


if __name__ == "__main__":
    # python3 tests/integration/receiver.py PORT: a GP endpoint on 127.0.0.1:PORT
    # that prints each notification it gets (the README's walk-through).
    import sys

    r = Receiver(port=int(sys.argv[1]) if len(sys.argv) > 1 else 9443).start()
    print("listening on %s (client certificate required)" % r.url("/"), flush=True)
    shown = 0
    try:
        while True:
            time.sleep(0.2)
            with r.lock:
                fresh = r.received[shown:]
                shown = len(r.received)
            for n in fresh:
                print("POST %s from %s, %d bytes" % (n.path, n.client_cn, len(n.body)), flush=True)
                if n.body:
                    print(json.dumps(n.bundle(), indent=1, ensure_ascii=False), flush=True)
    except KeyboardInterrupt:
        r.stop()
