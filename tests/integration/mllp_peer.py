"""A stand-in RIS for the black-box tests, written from the HL7 v2 rules alone
(Python sockets, no gateway code): ER7 parsing and escaping, MLLP framing, ACKs,
an MLLP server that receives orders and acks, refuses, stalls or disconnects as
told, and builders of the messages a RIS sends back (order status, SIU, ORU)."""

import socket
import threading
import time
import uuid

START, END, CR = b"\x0b", b"\x1c", b"\x0d"


# ---------------------------------------------------------------- ER7

def unescape(text, esc="\\"):
    """HL7 v2.5.1 2.7: \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\.br\\ and \\Xhh\\."""
    out, i = [], 0
    names = {"F": "|", "S": "^", "T": "&", "R": "~", "E": esc, ".br": "\n"}
    while i < len(text):
        if text[i] == esc:
            j = text.find(esc, i + 1)
            if j < 0:
                raise ValueError("unterminated escape in %r" % text)
            name = text[i + 1:j]
            if name in names:
                out.append(names[name])
            elif name.startswith("X"):
                out.append(bytes.fromhex(name[1:]).decode("utf-8"))
            else:
                raise ValueError("unknown escape \\%s\\" % name)
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def escape(text):
    return (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
            .replace("&", "\\T\\").replace("~", "\\R\\").replace("\r\n", "\\.br\\")
            .replace("\n", "\\.br\\").replace("\r", "\\.br\\"))


class Message:
    """A parsed ER7 message: segments of raw fields, read with get()."""

    def __init__(self, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        lines = [s for s in text.replace("\n", "\r").split("\r") if s]
        if not lines or not lines[0].startswith("MSH"):
            raise ValueError("not an HL7 message: %r" % text[:40])
        self.fs = lines[0][3]
        self.cs, self.rs, self.esc, self.ss = lines[0][4:8]
        self.segments = []
        for line in lines:
            fields = line.split(self.fs)
            if fields[0] == "MSH":  # MSH-1 is the separator itself
                fields = ["MSH", self.fs] + fields[1:]
            self.segments.append(fields)
        self.text = text

    def all(self, name):
        return [s for s in self.segments if s[0] == name]

    def field(self, seg, n):
        if seg[0] == "MSH" and n == 2:
            return seg[2]
        return seg[n] if n < len(seg) else ""

    def get(self, name, field, comp=1, sub=1, rep=0, occurrence=0):
        """The unescaped value at name-field.comp.sub (1-based), repetition rep."""
        segs = self.all(name)
        if occurrence >= len(segs):
            return ""
        raw = self.field(segs[occurrence], field)
        if name == "MSH" and field == 2:
            return raw
        reps = raw.split(self.rs)
        if rep >= len(reps):
            return ""
        comps = reps[rep].split(self.cs)
        if comp > len(comps):
            return ""
        subs = comps[comp - 1].split(self.ss)
        if sub > len(subs):
            return ""
        return unescape(subs[sub - 1], self.esc)

    def reps(self, name, field, occurrence=0):
        segs = self.all(name)
        raw = self.field(segs[occurrence], field) if occurrence < len(segs) else ""
        return [r for r in raw.split(self.rs)] if raw else []

    def raw_field(self, name, field, occurrence=0):
        segs = self.all(name)
        return self.field(segs[occurrence], field) if occurrence < len(segs) else ""

    @property
    def control_id(self):
        return self.get("MSH", 10)

    @property
    def type(self):
        return "%s^%s" % (self.get("MSH", 9, 1), self.get("MSH", 9, 2))

    def names(self):
        return [s[0] for s in self.segments]


def split_batch(data):
    """The messages of a batch (FHS/BHS ... BTS/FTS) or of plain concatenated messages."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    out, cur = [], []
    for line in [s for s in data.replace("\n", "\r").split("\r") if s]:
        tag = line[:3]
        if tag in ("FHS", "BHS", "BTS", "FTS"):
            continue
        if tag == "MSH" and cur:
            out.append("\r".join(cur) + "\r")
            cur = []
        cur.append(line)
    if cur:
        out.append("\r".join(cur) + "\r")
    return [Message(m) for m in out]


def batch_trailer_counts(data):
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    segs = [s for s in text.split("\r") if s]
    return {s[:3]: s.split("|")[1] if "|" in s else "" for s in segs if s[:3] in ("BTS", "FTS")}


# ---------------------------------------------------------------- building

def now_ts():
    return time.strftime("%Y%m%d%H%M%S")


def new_id():
    return "RIS" + uuid.uuid4().hex[:17].upper()


def msh(type_, trigger, structure, control_id=None, version="2.5.1", sender=("RIS", "BACHAUMONT")):
    return "MSH|^~\\&|%s|%s|FHIRGW|FHIRGW|%s||%s^%s^%s|%s|P|%s|||||FRA|UNICODE UTF-8" % (
        sender[0], sender[1], now_ts(), type_, trigger, structure, control_id or new_id(), version)


def ack_for(msg, code="AA", text=None):
    """An ACK answering msg (sender and receiver swapped, MSA-2 = its MSH-10)."""
    seg = ["MSH|^~\\&|%s|%s|%s|%s|%s||ACK^%s^ACK|%s|P|%s" % (
        msg.raw_field("MSH", 5), msg.raw_field("MSH", 6), msg.raw_field("MSH", 3),
        msg.raw_field("MSH", 4), now_ts(), msg.get("MSH", 9, 2), new_id(),
        msg.get("MSH", 12) or "2.5.1"),
        "MSA|%s|%s" % (code, escape(msg.control_id))]
    if text:
        seg.append("ERR|||207^Application internal error^HL70357|E||||%s" % escape(text))
    return "\r".join(seg) + "\r"


def order_status(placer, control, status="", filler="F-1", version="2.5.1", control_id=None,
                 reason=None, type_="ORM"):
    """ORM^O01 (or OMI^O23) from the RIS: ORC-1 control, ORC-5 status, ORC-3 filler."""
    trigger, structure = {"ORM": ("O01", "ORM_O01"), "OMI": ("O23", "OMI_O23")}[type_]
    orc = segment("ORC", {1: control, 2: placer + "^FHIRGW", 3: filler + "^RIS", 5: status,
                          9: now_ts(), 16: "^" + escape(reason) if reason else ""})
    segs = [msh(type_, trigger, structure, control_id, version),
            "PID|1||283052724101232^^^INS-NIR&1.2.250.1.213.1.4.8&ISO^INS||Dupré^Hélène", orc,
            segment("OBR", {1: "1", 2: placer + "^FHIRGW", 3: filler + "^RIS",
                            4: "LHLH003^Infiltration^CCAM"})]
    return "\r".join(segs) + "\r"


def segment(name, fields):
    """A segment from {field number: raw value}."""
    n = max(fields) if fields else 0
    return "|".join([name] + [fields.get(i, "") for i in range(1, n + 1)])


def siu(placer, trigger="S12", start="202612031430", minutes=30, appt_id="APPT-1",
        control_id=None):
    sch = segment("SCH", {1: appt_id + "^RIS", 2: appt_id + "^RIS",
                          7: "Infiltration^Infiltration rachidienne", 9: str(minutes),
                          10: "min", 11: "^^^" + start, 26: placer + "^FHIRGW"})
    segs = [msh("SIU", trigger, "SIU_S12", control_id), sch,
            "PID|1||283052724101232^^^INS-NIR&1.2.250.1.213.1.4.8&ISO^INS||Dupré^Hélène",
            "RGS|1",
            segment("AIS", {1: "1", 3: "LHLH003^Infiltration articulaire^CCAM", 4: start,
                            7: str(minutes), 8: "min"})]
    return "\r".join(segs) + "\r"


def oru(placer, lines, status="F", filler="F-1", control_id=None):
    segs = [msh("ORU", "R01", "ORU_R01", control_id),
            "PID|1||283052724101232^^^INS-NIR&1.2.250.1.213.1.4.8&ISO^INS||Dupré^Hélène",
            "ORC|RE|%s^FHIRGW|%s^RIS" % (placer, filler),
            segment("OBR", {1: "1", 2: placer + "^FHIRGW", 3: filler + "^RIS",
                            4: "LHLH003^Infiltration articulaire^CCAM", 7: now_ts(),
                            22: now_ts(), 25: status})]
    for i, line in enumerate(lines, 1):
        segs.append(segment("OBX", {1: str(i), 2: "TX", 3: "REPORT^Compte rendu^L",
                                    5: escape(line), 11: status}))
    return "\r".join(segs) + "\r"


# ---------------------------------------------------------------- MLLP

def frame(text):
    return START + (text.encode("utf-8") if isinstance(text, str) else text) + END + CR


def read_frame(sock, timeout):
    """One MLLP frame from sock (bytes without the block characters), or None on close."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
        start = buf.find(START)
        end = buf.find(END, start + 1) if start >= 0 else -1
        if end >= 0:
            return buf[start + 1:end]


def send(host, port, text, timeout=10):
    """Sends one message over a new MLLP connection and returns the ACK (a Message)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(frame(text))
        data = read_frame(s, timeout)
        return Message(data) if data is not None else None


class Peer:
    """An MLLP server standing for a RIS that receives pushed orders.

    behave: what to do with each message received, consumed in order from the
    list script, then default: "ack" (AA), "AE"/"AR" (refuse), "stall" (keep
    the connection, never answer), "disconnect" (close without answering)."""

    def __init__(self, port=0, default="ack"):
        self.port = port
        self.default = default
        self.script = []
        self.received = []  # Messages in the order received (repeats included)
        self.lock = threading.Lock()
        self.sock = None
        self.conns = []
        self.running = False

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(8)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        """The RIS goes down: no more connections, current ones cut."""
        self.running = False
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns = []

    def _accept(self):
        sock = self.sock
        while self.running:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _next_behaviour(self):
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def _serve(self, conn):
        buf = b""
        try:
            while self.running:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while START in buf and END in buf[buf.find(START):]:
                    s = buf.find(START)
                    e = buf.find(END, s)
                    msg = Message(buf[s + 1:e])
                    buf = buf[e + 2:]
                    with self.lock:
                        self.received.append(msg)
                    what = self._next_behaviour()
                    if what == "disconnect":
                        conn.close()
                        return
                    if what == "stall":
                        continue
                    code = "AA" if what == "ack" else what
                    conn.sendall(frame(ack_for(msg, code, None if code == "AA" else
                                               "refused by the test RIS")))
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def control_ids(self):
        with self.lock:
            return [m.control_id for m in self.received]

    def wait_for(self, n, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.received) >= n:
                    return True
            time.sleep(0.02)
        return False
