package dev.stompede.interop.spring;

import java.lang.reflect.Type;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.springframework.messaging.simp.stomp.StompFrameHandler;
import org.springframework.messaging.simp.stomp.StompHeaders;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.fail;

/** The MESSAGE frames of one subscription, converted to {@code type} (String or byte[]). */
public final class Inbox implements StompFrameHandler {

	/** One MESSAGE: its headers and converted body. */
	public record Received(StompHeaders headers, Object payload) {

		public String text() {
			return (String) this.payload;
		}

		public byte[] bytes() {
			return (byte[]) this.payload;
		}
	}

	public static final Duration WAIT = Duration.ofSeconds(10);

	private final Class<?> type;

	private final BlockingQueue<Received> messages = new LinkedBlockingQueue<>();

	public Inbox(Class<?> type) {
		this.type = type;
	}

	public static Inbox text() {
		return new Inbox(String.class);
	}

	@Override
	public Type getPayloadType(StompHeaders headers) {
		return this.type;
	}

	@Override
	public void handleFrame(StompHeaders headers, Object payload) {
		this.messages.add(new Received(headers, payload));
	}

	public Received next() throws InterruptedException {
		return next(WAIT);
	}

	public Received next(Duration timeout) throws InterruptedException {
		Received received = this.messages.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
		if (received == null) {
			fail("no MESSAGE within " + timeout.toMillis() + " ms");
		}
		return received;
	}

	/** The next MESSAGE, or null when none arrives within the timeout. */
	public Received poll(Duration timeout) throws InterruptedException {
		return this.messages.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
	}

	/** Nothing arrived so far (call after a later marker message has been received elsewhere). */
	public void assertEmpty() {
		assertNull(this.messages.peek(), "unexpected MESSAGE");
	}
}
