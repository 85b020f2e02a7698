package dev.stompede.interop.spring;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import org.springframework.messaging.simp.stomp.ConnectionLostException;
import org.springframework.messaging.simp.stomp.StompHeaders;
import org.springframework.messaging.simp.stomp.StompSession;
import org.springframework.messaging.simp.stomp.StompSession.Receiptable;
import org.springframework.messaging.simp.stomp.StompSession.Subscription;
import org.springframework.scheduling.TaskScheduler;
import org.springframework.scheduling.concurrent.ThreadPoolTaskScheduler;
import org.springframework.util.MimeType;
import org.springframework.util.MimeTypeUtils;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * What an application does with Spring's STOMP client against Stompede, for one transport and one STOMP version.
 * Spring sends {@code accept-version:1.1,1.2} unless the application sets it; the 1.1 subclasses set it, which
 * makes Spring acknowledge with {@code message-id} alone (no {@code subscription}), as the anchors note.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
public abstract class AbstractStompClientTest {

	private static final Duration WAIT = Duration.ofSeconds(10);

	private ThreadPoolTaskScheduler scheduler;

	private Transport transport;

	private final List<StompSession> sessions = new ArrayList<>();

	/** "1.1" or "1.2": the only version offered in CONNECT's accept-version. */
	protected abstract String version();

	protected abstract Transport createTransport(TaskScheduler scheduler);

	@BeforeAll
	void startClient() {
		this.scheduler = new ThreadPoolTaskScheduler();
		this.scheduler.setPoolSize(2);
		this.scheduler.setThreadNamePrefix("stomp-client-");
		this.scheduler.setDaemon(true);
		this.scheduler.initialize();
		this.transport = createTransport(this.scheduler);
	}

	@AfterAll
	void stopClient() {
		this.transport.close();
		this.scheduler.shutdown();
	}

	@AfterEach
	void disconnectSessions() {
		for (StompSession session : this.sessions) {
			if (session.isConnected()) {
				try {
					session.disconnect();
				}
				catch (RuntimeException ignored) {
					// already closed by the broker
				}
			}
		}
		this.sessions.clear();
	}

	// ---- tests -----------------------------------------------------------------------------------------------

	@Test
	void connectNegotiatesVersion() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		StompHeaders connected = recorder.connectedHeaders();
		assertEquals(version(), connected.getFirst("version"));
		assertNotNull(connected.getFirst("server"), "CONNECTED carries server");
		assertTrue(connected.getFirst("server").startsWith("stompede/"), connected.getFirst("server"));
		assertNotNull(connected.getFirst("session"), "CONNECTED carries session");
		assertNotNull(connected.getHeartbeat(), "CONNECTED carries heart-beat");
		assertTrue(session.isConnected());
		recorder.assertHealthy();
	}

	@Test
	void topicRoundTripWithReceipts() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		session.setAutoReceipt(true);
		String destination = "/topic/" + Stompede.unique("spring.topic");
		Inbox inbox = Inbox.text();
		Subscription subscription = session.subscribe(destination, inbox);
		awaitReceipt(subscription, "SUBSCRIBE");

		String body = "héllo wörld ✓ 🚀";
		StompHeaders send = new StompHeaders();
		send.setDestination(destination);
		send.set("x-trace", "abc-123");
		awaitReceipt(session.send(send, body), "SEND");

		Inbox.Received message = inbox.next();
		assertEquals(body, message.text());
		StompHeaders h = message.headers();
		assertEquals(destination, h.getDestination());
		assertEquals(subscription.getSubscriptionId(), h.getSubscription());
		assertNotNull(h.getMessageId(), "MESSAGE carries message-id");
		assertEquals("abc-123", h.getFirst("x-trace"), "user headers pass through");
		assertEquals(new MimeType("text", "plain", StandardCharsets.UTF_8), h.getContentType());
		assertEquals(body.getBytes(StandardCharsets.UTF_8).length, h.getContentLength(), "content-length counts octets");
		recorder.assertHealthy();
	}

	@Test
	void queueHoldsMessagesUntilASubscriberArrives() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		session.setAutoReceipt(true);
		String queue = "/queue/" + Stompede.unique("spring.backlog");
		for (String body : List.of("m1", "m2", "m3")) {
			awaitReceipt(session.send(queue, body), "SEND " + body);
		}
		Inbox inbox = Inbox.text();
		awaitReceipt(session.subscribe(queue, inbox), "SUBSCRIBE");
		assertEquals("m1", inbox.next().text());
		assertEquals("m2", inbox.next().text());
		assertEquals("m3", inbox.next().text());
		recorder.assertHealthy();
	}

	@Test
	void queueDeliversEachMessageToOneConsumer() throws Exception {
		Recorder recorder = new Recorder();
		StompSession first = connect(recorder);
		StompSession second = connect(recorder);
		first.setAutoReceipt(true);
		second.setAutoReceipt(true);
		String queue = "/queue/" + Stompede.unique("spring.work");
		Inbox a = Inbox.text();
		Inbox b = Inbox.text();
		awaitReceipt(first.subscribe(queue, a), "SUBSCRIBE first");
		awaitReceipt(second.subscribe(queue, b), "SUBSCRIBE second");

		Set<String> expected = new HashSet<>();
		for (int i = 0; i < 6; i++) {
			expected.add("job-" + i);
			first.send(queue, "job-" + i);
		}
		List<String> received = new ArrayList<>();
		long deadline = System.nanoTime() + WAIT.toNanos();
		while (received.size() < expected.size() && System.nanoTime() < deadline) {
			for (Inbox inbox : List.of(a, b)) {
				Inbox.Received message = inbox.poll(Duration.ofMillis(20));
				if (message != null) {
					received.add(message.text());
				}
			}
		}
		// A message given to both consumers would show up here as an extra one.
		Inbox.Received extra = a.poll(Duration.ofMillis(300));
		if (extra == null) {
			extra = b.poll(Duration.ofMillis(1));
		}
		assertNull(extra, "a queue message was delivered twice");
		assertEquals(expected.size(), received.size(), "received " + received);
		assertEquals(expected, new HashSet<>(received));
		recorder.assertHealthy();
	}

	@Test
	void clientIndividualAckAndNack() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		session.setAutoReceipt(true);
		String queue = "/queue/" + Stompede.unique("spring.individual");
		Inbox inbox = Inbox.text();
		StompHeaders subscribe = new StompHeaders();
		subscribe.setDestination(queue);
		subscribe.setAck("client-individual");
		Subscription subscription = session.subscribe(subscribe, inbox);
		awaitReceipt(subscription, "SUBSCRIBE");
		awaitReceipt(session.send(queue, "one"), "SEND one");
		awaitReceipt(session.send(queue, "two"), "SEND two");

		Inbox.Received one = inbox.next();
		Inbox.Received two = inbox.next();
		assertEquals("one", one.text());
		assertEquals("two", two.text());
		if (version().equals("1.2")) {
			assertNotNull(one.headers().getAck(), "STOMP 1.2: a client-ack MESSAGE carries ack");
		}

		// NACK returns "one" to the queue; its only consumer gets it again.
		awaitReceipt(session.acknowledge(ackId(one.headers()), false), "NACK one");
		Inbox.Received again = inbox.next();
		assertEquals("one", again.text());
		// The redelivery says so (and how often the message came back); the first delivery did not.
		assertNull(one.headers().getFirst("redelivered"), "a first delivery carries no redelivered header");
		assertEquals("true", again.headers().getFirst("redelivered"), "a NACKed message comes back with redelivered:true");
		assertEquals("1", again.headers().getFirst("x-delivery-count"), "x-delivery-count counts the returns");
		assertEquals(one.headers().getMessageId(), again.headers().getMessageId(), "a redelivery keeps its message-id");
		// Individual: acknowledging "two" must not settle the redelivered "one", which is acknowledged after it.
		awaitReceipt(session.acknowledge(ackId(two.headers()), true), "ACK two");
		awaitReceipt(session.acknowledge(ackId(again.headers()), true), "ACK one");
		subscription.unsubscribe();

		assertQueueDrained(session, queue);
		recorder.assertHealthy();
	}

	@Test
	void clientAckIsCumulative() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		session.setAutoReceipt(true);
		String queue = "/queue/" + Stompede.unique("spring.cumulative");
		Inbox inbox = Inbox.text();
		StompHeaders subscribe = new StompHeaders();
		subscribe.setDestination(queue);
		subscribe.setAck("client");
		awaitReceipt(session.subscribe(subscribe, inbox), "SUBSCRIBE");
		for (String body : List.of("a", "b", "c")) {
			awaitReceipt(session.send(queue, body), "SEND " + body);
		}
		inbox.next();
		inbox.next();
		Inbox.Received last = inbox.next();
		assertEquals("c", last.text());
		// One ACK of the last message covers all three (STOMP 1.2 §SUBSCRIBE ack Header, client mode).
		awaitReceipt(session.acknowledge(ackId(last.headers()), true), "ACK c");
		session.disconnect();

		Recorder other = new Recorder();
		StompSession fresh = connect(other);
		fresh.setAutoReceipt(true);
		assertQueueDrained(fresh, queue);
		recorder.assertHealthy();
		other.assertHealthy();
	}

	@Test
	void unackedMessageIsRedeliveredAfterDisconnect() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		session.setAutoReceipt(true);
		String queue = "/queue/" + Stompede.unique("spring.redeliver");
		Inbox inbox = Inbox.text();
		StompHeaders subscribe = new StompHeaders();
		subscribe.setDestination(queue);
		subscribe.setAck("client-individual");
		awaitReceipt(session.subscribe(subscribe, inbox), "SUBSCRIBE");
		awaitReceipt(session.send(queue, "keep me"), "SEND");
		Inbox.Received first = inbox.next();
		assertEquals("keep me", first.text());
		session.disconnect(); // without ACK

		Recorder other = new Recorder();
		StompSession fresh = connect(other);
		fresh.setAutoReceipt(true);
		Inbox later = Inbox.text();
		awaitReceipt(fresh.subscribe(queue, later), "SUBSCRIBE again");
		Inbox.Received redelivered = later.next();
		assertEquals("keep me", redelivered.text());
		other.assertHealthy();
	}

	@Test
	void unsubscribeStopsDelivery() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		session.setAutoReceipt(true);
		String gone = "/topic/" + Stompede.unique("spring.gone");
		String kept = "/topic/" + Stompede.unique("spring.kept");
		Inbox goneInbox = Inbox.text();
		Inbox keptInbox = Inbox.text();
		Subscription goneSub = session.subscribe(gone, goneInbox);
		awaitReceipt(goneSub, "SUBSCRIBE gone");
		awaitReceipt(session.subscribe(kept, keptInbox), "SUBSCRIBE kept");
		goneSub.unsubscribe();
		awaitReceipt(session.send(gone, "after unsubscribe"), "SEND gone");
		awaitReceipt(session.send(kept, "marker"), "SEND kept");
		// The broker handles a connection's frames in order: the marker arrives after anything sent to `gone`.
		assertEquals("marker", keptInbox.next().text());
		goneInbox.assertEmpty();
		recorder.assertHealthy();
	}

	@Test
	void escapedHeadersRoundTrip() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		session.setAutoReceipt(true);
		String destination = "/topic/" + Stompede.unique("spring.escape");
		Inbox inbox = Inbox.text();
		awaitReceipt(session.subscribe(destination, inbox), "SUBSCRIBE");
		// Spring escapes \\, : and LF (and CR, which only STOMP 1.2 allows) in every header of SEND.
		String value = "a:b\nc\\d" + (version().equals("1.2") ? "\re" : "");
		StompHeaders send = new StompHeaders();
		send.setDestination(destination);
		send.set("x-tricky", value);
		send.set("x-colon:name", "v");
		awaitReceipt(session.send(send, "escapes"), "SEND");
		Inbox.Received message = inbox.next();
		assertEquals(value, message.headers().getFirst("x-tricky"));
		assertEquals("v", message.headers().getFirst("x-colon:name"));
		recorder.assertHealthy();
	}

	@Test
	void binaryBodyWithNulRoundTrips() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		session.setAutoReceipt(true);
		String destination = "/topic/" + Stompede.unique("spring.binary");
		Inbox inbox = new Inbox(byte[].class);
		awaitReceipt(session.subscribe(destination, inbox), "SUBSCRIBE");
		byte[] body = { 0, 1, 2, 0, (byte) 0xff, (byte) 0xfe, '\n', 0 };
		StompHeaders send = new StompHeaders();
		send.setDestination(destination);
		send.setContentType(MimeTypeUtils.APPLICATION_OCTET_STREAM);
		awaitReceipt(session.send(send, body), "SEND");
		Inbox.Received message = inbox.next();
		assertArrayEquals(body, message.bytes());
		assertEquals(body.length, message.headers().getContentLength());
		assertEquals(MimeTypeUtils.APPLICATION_OCTET_STREAM, message.headers().getContentType());
		recorder.assertHealthy();
	}

	@Test
	void heartbeatsKeepIdleSessionAlive() throws Exception {
		StompHeaders headers = connectHeaders();
		headers.setHeartbeat(new long[] { 1000, 1000 });
		Recorder recorder = new Recorder();
		StompSession session = connect(headers, recorder);
		long[] offered = recorder.connectedHeaders().getHeartbeat();
		assertNotNull(offered, "CONNECTED heart-beat");
		assertTrue(offered[0] > 0 && offered[0] <= 1000 && offered[1] > 0 && offered[1] <= 1000,
				"this test needs a node started with heartbeatMinMs in 1..1000, got "
						+ offered[0] + "," + offered[1]);
		// Both sides beat at max(1000, broker's): Spring gives up after 3 silent intervals, Stompede after
		// heartbeatGrace of them. Surviving several intervals idle proves beats flow both ways.
		Thread.sleep(4_000);
		recorder.assertHealthy();
		assertTrue(session.isConnected(), "session still connected after idling");

		session.setAutoReceipt(true);
		String destination = "/topic/" + Stompede.unique("spring.alive");
		Inbox inbox = Inbox.text();
		awaitReceipt(session.subscribe(destination, inbox), "SUBSCRIBE");
		awaitReceipt(session.send(destination, "still here"), "SEND");
		assertEquals("still here", inbox.next().text());
		recorder.assertHealthy();
	}

	@Test
	void errorFrameForInvalidDestination() throws Exception {
		Recorder recorder = new Recorder();
		StompSession session = connect(recorder);
		String destination = "/nowhere/" + Stompede.unique("spring.bad");
		StompHeaders send = new StompHeaders();
		send.setDestination(destination);
		send.setReceipt("bad-send");
		session.send(send, "lost");
		Recorder.ErrorFrame error = recorder.nextError(WAIT);
		String message = error.headers().getFirst("message");
		assertNotNull(message, "ERROR carries message");
		assertTrue(message.contains(destination), message);
		assertEquals("bad-send", error.headers().getFirst("receipt-id"), "ERROR names the frame's receipt");
		// STOMP 1.2 §ERROR: the server closes the connection after an ERROR.
		assertInstanceOf(ConnectionLostException.class, recorder.nextFailure(WAIT));
		assertFalse(session.isConnected());
	}

	// ---- helpers ---------------------------------------------------------------------------------------------

	protected StompHeaders connectHeaders() {
		StompHeaders headers = new StompHeaders();
		headers.setAcceptVersion(version());
		return headers;
	}

	protected StompSession connect(Recorder recorder) throws Exception {
		return connect(connectHeaders(), recorder);
	}

	protected StompSession connect(StompHeaders headers, Recorder recorder) throws Exception {
		StompSession session;
		try {
			session = this.transport.connect(headers, recorder).get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
		}
		catch (Exception ex) {
			throw new AssertionError("could not connect over " + this.transport.name() + ": " + ex, ex);
		}
		this.sessions.add(session);
		return session;
	}

	/** What Spring's acknowledge(String, ...) expects: message-id in 1.1 (it sends message-id), ack otherwise (it sends id). */
	protected String ackId(StompHeaders message) {
		return version().equals("1.1") ? message.getMessageId() : message.getAck();
	}

	/** A fresh auto-ack subscriber gets only a new marker message: nothing unacknowledged was left behind. */
	private void assertQueueDrained(StompSession session, String queue) throws Exception {
		Inbox inbox = Inbox.text();
		Subscription subscription = session.subscribe(queue, inbox);
		awaitReceipt(subscription, "SUBSCRIBE drained check");
		awaitReceipt(session.send(queue, "marker"), "SEND marker");
		assertEquals("marker", inbox.next().text(), "an acknowledged message came back");
		subscription.unsubscribe();
	}

	protected static void awaitReceipt(Receiptable receiptable, String what) throws InterruptedException {
		assertNotNull(receiptable.getReceiptId(), what + " was sent without a receipt header");
		CountDownLatch latch = new CountDownLatch(1);
		AtomicBoolean lost = new AtomicBoolean();
		receiptable.addReceiptTask(latch::countDown);
		receiptable.addReceiptLostTask(() -> {
			lost.set(true);
			latch.countDown();
		});
		if (!latch.await(WAIT.toMillis() + 1_000, TimeUnit.MILLISECONDS) || lost.get()) {
			fail("no RECEIPT for " + what + " (receipt " + receiptable.getReceiptId() + ")");
		}
	}
}
