#!/usr/bin/python3
"""subscription_latency.py -- make bench-subscriptions: how long a GP waits
between a change committing and its notification arriving, under load.

Starts the gateway on a temporary store with one Subscription (criteria
"Task", full-resource payload) pointing at an HTTPS receiver in this process
(tests/integration/receiver.py: it requires the gateway's client
certificate), runs bench/loadgen creating referrals for BENCH_DURATION
seconds over BENCH_CONNECTIONS connections (each referral creates a Task, so
one notification), waits for the queue to drain, and prints the latency of
each notification: arrival time minus the Task's meta.lastUpdated (the
commit's timestamp, taken when its batch starts, so the figure includes the
commit and its fsync). Not part of make test: it measures, it asserts nothing.
"""

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from receiver import Receiver  # noqa: E402

B = os.environ.get("B", "build")
DURATION = os.environ.get("BENCH_DURATION", "10")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "16")
CERTS = os.path.join(REPO, "certs", "dev")


def https(port, method, path, body=None, cert="gp"):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(CERTS, cert + ".pem"), os.path.join(CERTS, cert + ".key"))
    req = urllib.request.Request("https://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/fhir+json"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return r.read()


def start_gateway(work, receiver):
    env = dict(os.environ, GATEWAY_SUBSCRIPTION_ENDPOINTS="https://127.0.0.1:%d/" % receiver.port)
    log = open(os.path.join(work, "gateway.log"), "w+")
    proc = subprocess.Popen([os.path.join(B, "fhir-gateway"), "serve", "--listen", "127.0.0.1:0",
                             "--mllp-listen", "", "--store", "sqlite:" + os.path.join(work, "b.db")],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(200):
        log.seek(0)
        m = re.search(r'"event":"listening".*"port":(\d+)', log.read())
        if m:
            return proc, int(m.group(1))
        time.sleep(0.05)
    proc.kill()
    sys.exit("bench: the gateway did not start")


def subscribe(port, receiver):
    sub = json.loads(https(port, "POST", "/fhir/Subscription", {
        "resourceType": "Subscription", "status": "requested", "reason": "latency bench",
        "criteria": "Task", "channel": {"type": "rest-hook", "endpoint": receiver.url(),
                                        "payload": "application/fhir+json"}}))
    for _ in range(200):
        if json.loads(https(port, "GET", "/fhir/Subscription/" + sub["id"]))["status"] == "active":
            return sub["id"]
        time.sleep(0.05)
    sys.exit("bench: the Subscription did not become active")


def queue_depth(port, sub_id):
    text = https(port, "GET", "/metrics", cert=None).decode()
    m = re.search(r'^gateway_subscription_queue_depth\{subscription="%s"\} (\S+)$' % sub_id,
                  text, re.M)
    return float(m.group(1)) if m else 0


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def main():
    receiver = Receiver().start()
    with tempfile.TemporaryDirectory(prefix="gw-bench-subs-") as work:
        proc, port = start_gateway(work, receiver)
        try:
            sub_id = subscribe(port, receiver)
            load = subprocess.run(
                [os.path.join(B, "bench", "loadgen"), "--port", str(port),
                 "--ca", os.path.join(CERTS, "ca.pem"), "--cert", os.path.join(CERTS, "gp.pem"),
                 "--key", os.path.join(CERTS, "gp.key"), "--method", "POST",
                 "--path", "/fhir/ServiceRequest", "--body", "bench/servicerequest.json",
                 "--content-type", "application/fhir+json", "--connections", CONNECTIONS,
                 "--duration", DURATION], cwd=REPO, capture_output=True, text=True, check=True)
            ended = time.time()
            while queue_depth(port, sub_id) > 0 and time.time() - ended < 300:
                time.sleep(0.2)
            drained = time.time() - ended
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    receiver.stop()
    latencies, numbers = [], []
    posts = [n for n in receiver.received if n.body and n.kind() == "event-notification"]
    for e in receiver.events("/fhir-notify"):
        task = e.focus()
        committed = datetime.strptime(task["meta"]["lastUpdated"], "%Y-%m-%dT%H:%M:%S.%fZ")
        committed = (committed - datetime(1970, 1, 1)).total_seconds()
        latencies.append((e.at - committed) * 1000.0)
        numbers.append(e.event_number())
    print("load: %s connections, %ss: %s" % (CONNECTIONS, DURATION, load.stdout.strip()))
    print("notifications: %d POSTs carried %d events (%d distinct); queue drained %.1fs after"
          " the load" % (len(posts), len(numbers), len(set(numbers)), drained))
    if latencies:
        print("latency commit -> received (ms): p50=%.1f p90=%.1f p99=%.1f max=%.1f"
              % (percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99),
                 max(latencies)))


if __name__ == "__main__":
    main()
