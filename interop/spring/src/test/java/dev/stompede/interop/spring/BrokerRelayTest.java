package dev.stompede.interop.spring;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

import org.springframework.messaging.simp.stomp.StompHeaders;
import org.springframework.messaging.simp.stomp.StompSession;
import org.springframework.scheduling.concurrent.ThreadPoolTaskScheduler;
import org.springframework.web.socket.WebSocketHttpHeaders;
import org.springframework.web.socket.client.standard.StandardWebSocketClient;
import org.springframework.web.socket.messaging.WebSocketStompClient;

import dev.stompede.interop.spring.relay.RelayApplication;
import dev.stompede.interop.spring.relay.RelayBrokerConfig;

import static dev.stompede.interop.spring.AbstractStompClientTest.awaitReceipt;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Two instances of a Spring application (A and B) with Stompede as their external broker, through
 * {@code enableStompBrokerRelay}. Browser-like clients connect to the applications' own WebSocket endpoint, never
 * to Stompede. Instance A relays to node 1; instance B to STOMPEDE_TCP_PORT_2 when a second, linked node runs,
 * and otherwise to node 1 too.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class BrokerRelayTest {

	private RelayApplication.Instance a;

	private RelayApplication.Instance b;

	private ThreadPoolTaskScheduler scheduler;

	private WebSocketStompClient client;

	private final List<StompSession> sessions = new ArrayList<>();

	@BeforeAll
	void startApplications() throws InterruptedException {
		this.a = RelayApplication.start("A", Stompede.tcpPort());
		this.b = RelayApplication.start("B", Stompede.tcpPort2());
		// Until its system session is CONNECTED a relay answers clients with "Broker not available"; the first
		// test asserts that both got there.
		this.a.availability().awaitAvailable(15, TimeUnit.SECONDS);
		this.b.availability().awaitAvailable(15, TimeUnit.SECONDS);
		this.scheduler = new ThreadPoolTaskScheduler();
		this.scheduler.setPoolSize(2);
		this.scheduler.setThreadNamePrefix("app-client-");
		this.scheduler.setDaemon(true);
		this.scheduler.initialize();
		this.client = new WebSocketStompClient(new WireTap(new StandardWebSocketClient(), "app-client"));
		this.client.setMessageConverter(Transport.converter());
		this.client.setTaskScheduler(this.scheduler);
		this.client.setReceiptTimeLimit(10_000);
	}

	@AfterAll
	void stopApplications() {
		if (this.client != null) {
			this.client.stop();
			this.scheduler.shutdown();
		}
		// Each relay takes about 2 s to stop (Reactor Netty's quiet period): stop both at once.
		CompletableFuture<Void> stopB = CompletableFuture.runAsync(() -> {
			if (this.b != null) {
				this.b.close();
			}
		});
		if (this.a != null) {
			this.a.close();
		}
		stopB.join();
	}

	@AfterEach
	void disconnect() {
		for (StompSession session : this.sessions) {
			if (session.isConnected()) {
				try {
					session.disconnect();
				}
				catch (RuntimeException ignored) {
					// closed meanwhile
				}
			}
		}
		this.sessions.clear();
	}

	@Test
	@Order(1)
	void relaySystemSessionsConnect() throws Exception {
		assertTrue(this.a.availability().awaitAvailable(15, TimeUnit.SECONDS),
				"instance A's relay never connected its system session: " + this.a.availability().events());
		assertTrue(this.b.availability().awaitAvailable(15, TimeUnit.SECONDS),
				"instance B's relay never connected its system session: " + this.b.availability().events());
	}

	@Test
	@Order(2)
	void appDestinationReachesTopicSubscribersOnBothInstances() throws Exception {
		Recorder aliceLog = new Recorder();
		Recorder bobLog = new Recorder();
		StompSession alice = connect(this.a, "alice", aliceLog);
		StompSession bob = connect(this.b, "bob", bobLog);
		String room = Stompede.unique("room");
		Inbox aliceInbox = Inbox.text();
		Inbox bobInbox = Inbox.text();
		// The relay forwards SUBSCRIBE with its receipt to Stompede, and the RECEIPT back.
		awaitReceipt(alice.subscribe("/topic/echo." + room, aliceInbox), "alice SUBSCRIBE via A");
		awaitReceipt(bob.subscribe("/topic/echo." + room, bobInbox), "bob SUBSCRIBE via B");

		alice.send("/app/echo/" + room, "hello");
		assertEquals("A echoes alice: hello", aliceInbox.next().text());
		assertEquals("A echoes alice: hello", bobInbox.next().text());

		bob.send("/app/echo/" + room, "hi");
		assertEquals("B echoes bob: hi", aliceInbox.next().text());
		assertEquals("B echoes bob: hi", bobInbox.next().text());
		aliceLog.assertHealthy();
		bobLog.assertHealthy();
	}

	@Test
	@Order(3)
	void sendToUserReachesTheSendingSession() throws Exception {
		Recorder log = new Recorder();
		StompSession alice = connect(this.a, "alice", log);
		Inbox replies = Inbox.text();
		// Spring subscribes the session to /queue/replies-user{session} on Stompede.
		awaitReceipt(alice.subscribe("/user/queue/replies", replies), "SUBSCRIBE /user/queue/replies");
		alice.send("/app/whoami", "");
		Inbox.Received reply = replies.next();
		assertEquals("alice via A", reply.text());
		assertEquals("/user/queue/replies", reply.headers().getDestination(), "Spring restores the user destination");
		log.assertHealthy();
	}

	@Test
	@Order(4)
	void sendToUserCrossesInstances() throws Exception {
		assertWhispersCross();
	}

	@Test
	@Order(5)
	void systemHeartbeatsKeepRelaysUpWhileIdle() throws Exception {
		int aEvents = this.a.availability().events().size();
		int bEvents = this.b.availability().events().size();
		// Client sessions through the relay beat too: the relay forwards their heart-beat header and beats.
		StompHeaders headers = new StompHeaders();
		headers.setHeartbeat(new long[] { 500, 500 });
		Recorder carolLog = new Recorder();
		StompSession carol = connect(this.a, "carol", headers, carolLog);
		Inbox inbox = Inbox.text();
		String room = Stompede.unique("idle");
		awaitReceipt(carol.subscribe("/topic/echo." + room, inbox), "carol SUBSCRIBE");

		Thread.sleep(4 * RelayBrokerConfig.SYSTEM_HEARTBEAT_MS);

		assertEquals(aEvents, this.a.availability().events().size(),
				"instance A's system session went down while idle: " + this.a.availability().events());
		assertEquals(bEvents, this.b.availability().events().size(),
				"instance B's system session went down while idle: " + this.b.availability().events());
		carolLog.assertHealthy();
		assertTrue(carol.isConnected());
		carol.send("/app/echo/" + room, "awake");
		assertEquals("A echoes carol: awake", inbox.next().text());
		assertWhispersCross();
		assertFalse(this.a.availability().events().contains(false), "A: " + this.a.availability().events());
		assertFalse(this.b.availability().events().contains(false), "B: " + this.b.availability().events());
	}

	/** A user on A hears a whisper sent through B, and a user on B one sent through A. */
	private void assertWhispersCross() throws Exception {
		Recorder aliceLog = new Recorder();
		Recorder bobLog = new Recorder();
		StompSession alice = connect(this.a, "alice", aliceLog);
		StompSession bob = connect(this.b, "bob", bobLog);
		Inbox aliceWhispers = Inbox.text();
		Inbox bobWhispers = Inbox.text();
		awaitReceipt(alice.subscribe("/user/queue/whispers", aliceWhispers), "alice SUBSCRIBE /user/queue/whispers");
		awaitReceipt(bob.subscribe("/user/queue/whispers", bobWhispers), "bob SUBSCRIBE /user/queue/whispers");

		bob.send("/app/whisper", "alice|psst");
		Inbox.Received toAlice = aliceWhispers.next(Duration.ofSeconds(15));
		assertEquals("bob via B: psst", toAlice.text());
		assertEquals("/user/queue/whispers", toAlice.headers().getDestination());

		alice.send("/app/whisper", "bob|hush");
		assertEquals("alice via A: hush", bobWhispers.next(Duration.ofSeconds(15)).text());
		aliceLog.assertHealthy();
		bobLog.assertHealthy();
	}

	private StompSession connect(RelayApplication.Instance instance, String user, Recorder recorder) throws Exception {
		return connect(instance, user, new StompHeaders(), recorder);
	}

	private StompSession connect(RelayApplication.Instance instance, String user, StompHeaders headers,
			Recorder recorder) throws Exception {
		StompSession session = this.client
			.connectAsync(instance.stompUrl(user), new WebSocketHttpHeaders(), headers, recorder)
			.get(10, TimeUnit.SECONDS);
		session.setAutoReceipt(true);
		this.sessions.add(session);
		return session;
	}
}
