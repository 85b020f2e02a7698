#!/usr/bin/env python3
"""Interop checks of stomp.py 8.2.0 against a running Stompede broker.

Usage: check_stomp_py.py --host 127.0.0.1 --port 61613 --ws-url ws://127.0.0.1:15674/ws [--heartbeat-ms 250]

Runs the same scenarios with three connection classes: stomp.Connection12 and stomp.Connection11 over TCP, and
stomp.adapter.ws.WSStompConnection (STOMP 1.2 over WebSocket, no subprotocol offered). Prints one JSON object per
line and check: {"check": "<variant>/<scenario>", "ok": true|false, "ms": ..., "detail"|"error": ...}. Exits 1 when
any check failed, 2 on bad arguments.

What stomp.py does that the checks rely on: it connects with the STOMP command and a single accept-version; the
1.2 classes send `host` (the socket host), 1.1 sends none; content-length is added to every non-empty body; ACK
and NACK name the message by `id` (1.2) or `message-id` + `subscription` (1.1); heart-beats are a lone LF, and it
allows the server 1.5 times the negotiated interval.

--heartbeat-ms must be the broker's heartbeatMinMs: the client offers less, so both directions beat at the floor.
"""

import argparse
import itertools
import json
import sys
import threading
import time
import traceback
from urllib.parse import urlparse

import stomp
from stomp.adapter.ws import WSStompConnection

WAIT_S = 3.0
BODY = "héllo, wörld ✓\nline two"
ESCAPED = "a:b\\c\nd"
SERVER = "stompede/0.1.0"

_names = itertools.count(1)
_stamp = format(int(time.time() * 1000) % 10**9, "x")


def unique(prefix):
    """A destination name no other check (or run) uses."""
    return f"{prefix}py{_stamp}x{next(_names)}"


class CheckFailed(AssertionError):
    pass


def expect_equal(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def expect_true(condition, what):
    if not condition:
        raise CheckFailed(what)


class Recorder(stomp.ConnectionListener):
    """Everything one connection saw, guarded by one condition variable."""

    def __init__(self):
        self.cond = threading.Condition()
        self.connected = None
        self.messages = []
        self.receipts = set()
        self.errors = []
        self.sent = []
        self.beats_in = []
        self.beats_out = []
        self.heartbeat_timeouts = 0
        self.disconnected = False

    def on_connected(self, frame):
        with self.cond:
            self.connected = frame
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(f"{frame.headers.get('message')}: {frame.body}")
            self.cond.notify_all()

    def on_heartbeat(self):
        with self.cond:
            self.beats_in.append(time.monotonic())

    def on_heartbeat_timeout(self):
        with self.cond:
            self.heartbeat_timeouts += 1

    def on_send(self, frame):
        with self.cond:
            if frame.cmd is None:  # a heart-beat: stomp.py transmits an empty frame, which packs to a lone LF
                self.beats_out.append(time.monotonic())
            else:
                self.sent.append((frame.cmd, dict(frame.headers)))

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def wait(self, predicate, what, timeout=WAIT_S):
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise CheckFailed(f"timed out after {timeout} s waiting for {what}; errors: {self.errors}")


class Peer:
    """One stomp.py connection and its recorder."""

    _receipts = itertools.count(1)

    def __init__(self, variant, conn):
        self.variant = variant
        self.conn = conn
        self.rec = Recorder()
        conn.set_listener("recorder", self.rec)

    def receipt_id(self):
        return f"r-{next(Peer._receipts)}"

    def wait_receipt(self, rid, what):
        self.rec.wait(lambda: rid in self.rec.receipts, f"RECEIPT {rid} for {what}")

    def send(self, destination, body, **headers):
        rid = self.receipt_id()
        self.conn.send(destination, body, receipt=rid, **headers)
        self.wait_receipt(rid, f"SEND to {destination}")

    def subscribe(self, destination, sub_id, ack="auto"):
        rid = self.receipt_id()
        self.conn.subscribe(destination, id=sub_id, ack=ack, receipt=rid)
        self.wait_receipt(rid, f"SUBSCRIBE {sub_id}")

    def unsubscribe(self, sub_id):
        rid = self.receipt_id()
        self.conn.unsubscribe(id=sub_id, receipt=rid)
        self.wait_receipt(rid, f"UNSUBSCRIBE {sub_id}")

    def settle(self, kind, message, transaction=None):
        """ACK or NACK, named as the negotiated version wants, with a receipt."""
        rid = self.receipt_id()
        method = getattr(self.conn, kind)
        h = message.headers
        if self.variant.version == "1.2":
            method(h["ack"], transaction=transaction, receipt=rid)
        else:
            method(h["message-id"], h["subscription"], transaction=transaction, receipt=rid)
        self.wait_receipt(rid, kind.upper())

    def next_message(self, what):
        self.rec.wait(lambda: len(self.rec.messages) > 0, what)
        with self.rec.cond:
            return self.rec.messages.pop(0)

    def take(self, n, what):
        return [self.next_message(f"{what} ({i + 1} of {n})") for i in range(n)]

    def close(self):
        if self.conn.is_connected():
            self.conn.disconnect(receipt=self.receipt_id())


class Variant:
    def __init__(self, name, transport, version, args):
        self.name = name
        self.transport = transport
        self.version = version
        self.args = args
        self.peers = []

    def open(self, heartbeats=(0, 0)):
        a = self.args
        common = dict(heartbeats=heartbeats, reconnect_attempts_max=1, timeout=WAIT_S)
        if self.transport == "ws":
            url = urlparse(a.ws_url)
            conn = WSStompConnection([(url.hostname, url.port)], ws_path=url.path or "/", **common)
        elif self.version == "1.2":
            conn = stomp.Connection12([(a.host, a.port)], **common)
        else:
            conn = stomp.Connection11([(a.host, a.port)], **common)
        peer = Peer(self, conn)
        self.peers.append(peer)
        conn.connect(wait=True)
        peer.rec.wait(lambda: peer.rec.connected is not None, "CONNECTED")
        return peer

    def close_all(self):
        for peer in self.peers:
            try:
                peer.close()
            except Exception:  # a check that failed may leave a connection half-closed
                pass
        self.peers = []


# ---- scenarios -------------------------------------------------------------------------------------------------

def check_connect(v, _hb_ms):
    peer = v.open()
    cmd, headers = peer.rec.sent[0]
    expect_equal(cmd, "STOMP", "connect command")
    expected = {"accept-version": v.version}
    if v.version == "1.2":
        expected["host"] = "127.0.0.1"  # the socket's host; 1.1 sends host only for a configured vhost
    expect_equal(headers, expected, "STOMP headers")
    got = dict(peer.rec.connected.headers)
    # No heart-beat offered (0,0): the broker honors that, none either way.
    expected_connected = {"version": v.version, "session": got.get("session"), "server": SERVER,
                          "heart-beat": "0,0"}
    expect_equal(got, expected_connected, "CONNECTED headers")
    expect_true(got.get("session"), "CONNECTED has a session")
    return {"connected": got}


def check_send_subscribe(v, _hb_ms):
    dest = f"/topic/{unique('news')}"
    sub = v.open()
    pub = v.open()
    sub.subscribe(dest, "news")
    pub.send(dest, BODY, content_type="text/plain;charset=utf-8", headers={"x-escaped": ESCAPED})
    sent_cmd, sent_headers = pub.rec.sent[-1]
    expect_equal(sent_cmd, "SEND", "last frame sent")
    # As escaped for the wire (\\ \n : in 1.1 and 1.2); stomp.py fixes content-length to the UTF-8 size later.
    expect_equal((sent_headers.get("destination"), sent_headers.get("x-escaped")), (dest, "a\\cb\\\\c\\nd"),
                 "SEND headers as sent")
    message = sub.next_message("MESSAGE")
    expect_equal(message.body, BODY, "body")
    h = dict(message.headers)
    expect_equal(h, {
        "subscription": "news",
        "destination": dest,
        "message-id": h.get("message-id"),
        "content-type": "text/plain;charset=utf-8",
        "x-escaped": ESCAPED,
        "content-length": str(len(BODY.encode("utf-8"))),
    }, "MESSAGE headers")
    expect_true(h.get("message-id"), "MESSAGE has a message-id")
    return {"message-id": h["message-id"]}


def check_nack_redelivery(v, _hb_ms):
    dest = f"/queue/{unique('work')}"
    consumer = v.open()
    consumer.subscribe(dest, "work", ack="client-individual")
    consumer.send(dest, "job-1", headers={"x-job": "1"})
    first = consumer.next_message("first delivery")
    expect_equal((first.body, first.headers.get("redelivered")), ("job-1", None), "first delivery")
    consumer.settle("nack", first)
    again = consumer.next_message("redelivery")
    expect_equal(again.body, "job-1", "redelivered body")
    h = dict(again.headers)
    expect_equal(h, {
        "subscription": "work",
        "ack": h.get("ack"),
        "destination": dest,
        "message-id": first.headers["message-id"],
        "x-job": "1",
        "redelivered": "true",
        "x-delivery-count": "1",
        "content-length": "5",
    }, "redelivered MESSAGE headers")
    expect_true(h.get("ack") not in (None, first.headers.get("ack")), "redelivery has a new ack id")
    consumer.settle("ack", again)
    consumer.close()

    # Had the ACK not settled it, the disconnect would have returned job-1 ahead of job-2.
    nxt = v.open()
    nxt.subscribe(dest, "work2", ack="client-individual")
    nxt.send(dest, "job-2")
    second = nxt.next_message("job-2")
    expect_equal((second.body, second.headers.get("redelivered")), ("job-2", None), "next delivery")
    nxt.settle("ack", second)
    return {"message-id": first.headers["message-id"]}


def check_exactly_once(v, _hb_ms):
    """Two consumers on one queue: each of 40 messages reaches exactly one of them, none is lost."""
    dest = f"/queue/{unique('once')}"
    consumers = [v.open(), v.open()]
    for i, c in enumerate(consumers):
        c.subscribe(dest, f"once-{i}")
    producer = v.open()
    sent = [f"job-{i}" for i in range(40)]
    for body in sent:
        producer.send(dest, body)

    def total():
        return sum(len(c.rec.messages) for c in consumers)

    deadline = time.monotonic() + WAIT_S
    while total() < len(sent) and time.monotonic() < deadline:
        time.sleep(0.01)
    # The UNSUBSCRIBE receipts come after any MESSAGE the broker sent before them, and stomp.py hands a connection's
    # frames to its listener in order: a duplicate would be recorded by then.
    for i, c in enumerate(consumers):
        c.unsubscribe(f"once-{i}")
    got = [[m.body for m in c.rec.messages] for c in consumers]
    seen = [body for bodies in got for body in bodies]
    twice = sorted({body for body in seen if seen.count(body) > 1})
    lost = [body for body in sent if body not in seen]
    expect_true(not twice and not lost and len(seen) == len(sent),
                f"exactly-once: received {len(got[0])} + {len(got[1])} of {len(sent)}; twice: {twice}; lost: {lost}")
    return {"per-consumer": [len(bodies) for bodies in got]}


def check_client_ack(v, _hb_ms):
    dest = f"/queue/{unique('cum')}"
    consumer = v.open()
    consumer.subscribe(dest, "c", ack="client")
    for body in ("a", "b", "c"):
        consumer.send(dest, body)
    got = consumer.take(3, "a, b, c")
    expect_equal([m.body for m in got], ["a", "b", "c"], "bodies")
    consumer.settle("ack", got[1])  # STOMP 1.2 §SUBSCRIBE ack: covers a and b
    consumer.close()

    nxt = v.open()
    nxt.subscribe(dest, "c2", ack="client-individual")
    back = nxt.next_message("c, returned on disconnect")
    expect_equal((back.body, back.headers.get("redelivered"), back.headers.get("x-delivery-count")),
                 ("c", "true", "1"), "returned message")
    nxt.settle("ack", back)
    nxt.send(dest, "d")
    expect_equal(nxt.next_message("d").body, "d", "next message")
    return {}


def check_transaction(v, _hb_ms):
    dest = f"/topic/{unique('tx')}"
    sub = v.open()
    pub = v.open()
    sub.subscribe(dest, "s")
    tx = pub.conn.begin("tx-1")
    pub.conn.send(dest, "t1", transaction=tx, headers={"x-n": "1"})
    pub.conn.send(dest, "t2", transaction=tx, headers={"x-n": "2"})
    pub.send(dest, "outside")
    expect_equal(sub.next_message("outside").body, "outside", "first message (not in the transaction)")
    rid = pub.receipt_id()
    pub.conn.commit(tx, receipt=rid)
    pub.wait_receipt(rid, "COMMIT")
    committed = sub.take(2, "committed messages")
    expect_equal([(m.body, m.headers.get("x-n"), m.headers.get("transaction")) for m in committed],
                 [("t1", "1", None), ("t2", "2", None)], "committed messages")

    tx2 = pub.conn.begin("tx-2")
    pub.conn.send(dest, "dropped", transaction=tx2)
    rid = pub.receipt_id()
    pub.conn.abort(tx2, receipt=rid)
    pub.wait_receipt(rid, "ABORT")
    pub.send(dest, "after-abort")
    expect_equal(sub.next_message("after-abort").body, "after-abort", "message after ABORT")
    expect_equal(len(sub.rec.messages), 0, "messages left over")
    return {}


def check_transactional_ack(v, _hb_ms):
    dest = f"/queue/{unique('txack')}"
    consumer = v.open()
    consumer.subscribe(dest, "q", ack="client-individual")
    consumer.send(dest, "m")
    m = consumer.next_message("m")
    txa = consumer.conn.begin()
    consumer.settle("ack", m, transaction=txa)
    rid = consumer.receipt_id()
    consumer.conn.abort(txa, receipt=rid)
    consumer.wait_receipt(rid, "ABORT")
    consumer.unsubscribe("q")

    consumer.subscribe(dest, "q2", ack="client-individual")
    back = consumer.next_message("m, returned after the aborted ACK")
    expect_equal((back.body, back.headers.get("redelivered")), ("m", "true"), "returned message")
    txb = consumer.conn.begin()
    consumer.settle("ack", back, transaction=txb)
    rid = consumer.receipt_id()
    consumer.conn.commit(txb, receipt=rid)
    consumer.wait_receipt(rid, "COMMIT")
    consumer.unsubscribe("q2")

    consumer.subscribe(dest, "q3", ack="client-individual")
    consumer.send(dest, "sentinel")
    nxt = consumer.next_message("sentinel")
    expect_equal((nxt.body, nxt.headers.get("redelivered")), ("sentinel", None), "next message")
    return {}


def check_heartbeats(v, hb_ms):
    peer = v.open(heartbeats=(200, 200))
    _, connect_headers = peer.rec.sent[0]
    expect_equal(connect_headers.get("heart-beat"), "200,200", "heart-beat offered")
    start = time.monotonic()
    time.sleep(hb_ms * 6 / 1000)
    with peer.rec.cond:
        beats_in = [t for t in peer.rec.beats_in if t >= start]
        beats_out = [t for t in peer.rec.beats_out if t >= start]
        timeouts = peer.rec.heartbeat_timeouts
    gaps = [b - a for a, b in zip(beats_in, beats_in[1:])]
    longest = max([beats_in[0] - start] + gaps) if beats_in else None
    detail = {"in": len(beats_in), "out": len(beats_out), "longest_silence_ms": None if longest is None else round(longest * 1000),
              "in_at_ms": [round((t - start) * 1000) for t in beats_in]}
    expect_true(len(beats_out) >= 4, f"client heart-beats sent: {detail}")
    expect_true(len(beats_in) >= 5, f"server heart-beats received: {detail}")
    # stomp.py gives up when 1.5 intervals pass without a byte.
    expect_true(longest < hb_ms * 1.5 / 1000, f"server silence stays within stomp.py's 1.5 intervals: {detail}")
    expect_equal(timeouts, 0, "heart-beat timeouts")
    expect_true(peer.conn.is_connected(), "still connected")
    dest = f"/topic/{unique('hb')}"
    peer.subscribe(dest, "hb")
    peer.send(dest, "still here")
    expect_equal(peer.next_message("message after heart-beats").body, "still here", "body")
    return detail


def check_disconnect(v, _hb_ms):
    peer = v.open()
    rid = peer.receipt_id()
    # Returns once the RECEIPT came, but stomp.py closes the socket before it tells listeners of that RECEIPT.
    peer.conn.disconnect(receipt=rid)
    peer.wait_receipt(rid, "DISCONNECT")
    peer.rec.wait(lambda: peer.rec.disconnected, "on_disconnected")
    expect_true(not peer.conn.is_connected(), "disconnected")
    return {"receipt": rid}


SCENARIOS = [
    ("connect", check_connect),
    ("send-subscribe", check_send_subscribe),
    ("nack-redelivery", check_nack_redelivery),
    ("exactly-once", check_exactly_once),
    ("client-ack", check_client_ack),
    ("transaction", check_transaction),
    ("transactional-ack", check_transactional_ack),
    ("heart-beats", check_heartbeats),
    ("disconnect", check_disconnect),
]


def variants(args):
    return [
        Variant("tcp-1.2", "tcp", "1.2", args),
        Variant("tcp-1.1", "tcp", "1.1", args),
        Variant("ws-1.2", "ws", "1.2", args),
    ]


def run_one(variant, name, scenario, hb_ms):
    started = time.monotonic()
    result = {"check": f"{variant.name}/{name}"}
    try:
        detail = scenario(variant, hb_ms)
        errors = [e for p in variant.peers for e in p.rec.errors]
        expect_equal(errors, [], "ERROR frames")
        result.update(ok=True, detail=detail)
    except Exception as error:  # every failure becomes a result line; the run goes on
        result.update(ok=False, error=f"{type(error).__name__}: {error}")
        if not isinstance(error, CheckFailed):
            result["trace"] = traceback.format_exc(limit=4)
    finally:
        variant.close_all()
    result["ms"] = round((time.monotonic() - started) * 1000)
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result["ok"]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--heartbeat-ms", type=int, default=250)
    args = parser.parse_args(argv)
    ok = True
    for variant in variants(args):
        for name, scenario in SCENARIOS:
            ok = run_one(variant, name, scenario, args.heartbeat_ms) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
