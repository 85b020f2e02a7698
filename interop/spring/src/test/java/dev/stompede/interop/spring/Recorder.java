package dev.stompede.interop.spring;

import java.lang.reflect.Type;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.springframework.messaging.simp.stomp.StompCommand;
import org.springframework.messaging.simp.stomp.StompHeaders;
import org.springframework.messaging.simp.stomp.StompSession;
import org.springframework.messaging.simp.stomp.StompSessionHandlerAdapter;

import static org.junit.jupiter.api.Assertions.fail;

/** A session handler that keeps what happens to a session (ERROR frames, transport failures) for assertions. */
public final class Recorder extends StompSessionHandlerAdapter {

	/** An ERROR frame: its headers and its body as text. */
	public record ErrorFrame(StompHeaders headers, String body) {
	}

	public final BlockingQueue<ErrorFrame> errors = new LinkedBlockingQueue<>();

	public final BlockingQueue<Throwable> failures = new LinkedBlockingQueue<>();

	private final CompletableFuture<StompHeaders> connected = new CompletableFuture<>();

	/** The CONNECTED frame's headers (Spring may complete the session future just before calling afterConnected). */
	public StompHeaders connectedHeaders() throws Exception {
		return this.connected.get(5, TimeUnit.SECONDS);
	}

	@Override
	public void afterConnected(StompSession session, StompHeaders connectedHeaders) {
		this.connected.complete(connectedHeaders);
	}

	@Override
	public Type getPayloadType(StompHeaders headers) {
		return String.class;
	}

	@Override
	public void handleFrame(StompHeaders headers, Object payload) {
		this.errors.add(new ErrorFrame(headers, payload == null ? "" : payload.toString()));
	}

	@Override
	public void handleException(StompSession session, StompCommand command, StompHeaders headers, byte[] payload,
			Throwable exception) {
		this.failures.add(exception);
	}

	@Override
	public void handleTransportError(StompSession session, Throwable exception) {
		this.failures.add(exception);
	}

	public ErrorFrame nextError(Duration timeout) throws InterruptedException {
		ErrorFrame error = this.errors.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
		if (error == null) {
			fail("no ERROR frame within " + timeout.toMillis() + " ms");
		}
		return error;
	}

	public Throwable nextFailure(Duration timeout) throws InterruptedException {
		Throwable failure = this.failures.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
		if (failure == null) {
			fail("the transport did not fail or close within " + timeout.toMillis() + " ms");
		}
		return failure;
	}

	/** Fails if the session saw an ERROR frame or a transport failure. */
	public void assertHealthy() {
		if (!this.errors.isEmpty()) {
			fail("unexpected ERROR frame: " + this.errors.peek());
		}
		if (!this.failures.isEmpty()) {
			Throwable failure = this.failures.peek();
			throw new AssertionError("unexpected failure: " + failure, failure);
		}
	}
}
