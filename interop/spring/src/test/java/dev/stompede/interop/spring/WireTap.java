package dev.stompede.interop.spring;

import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import org.springframework.web.socket.BinaryMessage;
import org.springframework.web.socket.TextMessage;
import org.springframework.web.socket.WebSocketHandler;
import org.springframework.web.socket.WebSocketHttpHeaders;
import org.springframework.web.socket.WebSocketMessage;
import org.springframework.web.socket.WebSocketSession;
import org.springframework.web.socket.client.WebSocketClient;
import org.springframework.web.socket.handler.WebSocketHandlerDecorator;
import org.springframework.web.socket.handler.WebSocketSessionDecorator;
import org.springframework.web.util.UriComponentsBuilder;

/**
 * Logs every WebSocket message a client sends and receives, byte for byte (logger {@code stompede.wire.ws},
 * written to target/stomp-frames.log by logback-test.xml). TCP clients use Reactor Netty's own wiretap.
 */
public final class WireTap implements WebSocketClient {

	private static final Logger log = LoggerFactory.getLogger("stompede.wire.ws");

	private final WebSocketClient delegate;

	private final String name;

	public WireTap(WebSocketClient delegate, String name) {
		this.delegate = delegate;
		this.name = name;
	}

	@Override
	public CompletableFuture<WebSocketSession> execute(WebSocketHandler handler, String uriTemplate, Object... uriVars) {
		URI uri = UriComponentsBuilder.fromUriString(uriTemplate).buildAndExpand(uriVars).encode().toUri();
		return execute(handler, null, uri);
	}

	@Override
	public CompletableFuture<WebSocketSession> execute(WebSocketHandler handler, WebSocketHttpHeaders headers, URI uri) {
		return this.delegate.execute(new TappedHandler(handler, this.name + " " + uri), headers, uri);
	}

	/** A frame as readable text: NUL as ^@, CR and LF escaped, non-text bytes as \xNN. */
	public static String show(byte[] bytes) {
		StringBuilder out = new StringBuilder(bytes.length + 16);
		for (byte b : bytes) {
			int c = b & 0xff;
			switch (c) {
				case 0 -> out.append("^@");
				case '\n' -> out.append("\\n");
				case '\r' -> out.append("\\r");
				case '\\' -> out.append("\\\\");
				default -> {
					if (c < 0x20 || c == 0x7f) {
						out.append(String.format("\\x%02x", c));
					}
					else {
						out.append((char) c);
					}
				}
			}
		}
		// Multi-byte UTF-8 was appended byte by byte above; decode it back for readability.
		return new String(out.toString().getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
	}

	private static String describe(WebSocketMessage<?> message) {
		if (message instanceof TextMessage text) {
			return "text   " + show(text.asBytes());
		}
		if (message instanceof BinaryMessage binary) {
			ByteBuffer buffer = binary.getPayload().duplicate();
			byte[] bytes = new byte[buffer.remaining()];
			buffer.get(bytes);
			return "binary " + show(bytes);
		}
		return message.getClass().getSimpleName() + " " + message.getPayload();
	}

	private static final class TappedHandler extends WebSocketHandlerDecorator {

		private final String name;

		TappedHandler(WebSocketHandler delegate, String name) {
			super(delegate);
			this.name = name;
		}

		@Override
		public void afterConnectionEstablished(WebSocketSession session) throws Exception {
			log.debug("{} open (subprotocol {})", this.name, session.getAcceptedProtocol());
			super.afterConnectionEstablished(new TappedSession(session, this.name));
		}

		@Override
		public void handleMessage(WebSocketSession session, WebSocketMessage<?> message) throws Exception {
			log.debug("{} <<< {}", this.name, describe(message));
			super.handleMessage(session, message);
		}

		@Override
		public void afterConnectionClosed(WebSocketSession session, org.springframework.web.socket.CloseStatus status)
				throws Exception {
			log.debug("{} closed {}", this.name, status);
			super.afterConnectionClosed(session, status);
		}
	}

	private static final class TappedSession extends WebSocketSessionDecorator {

		private final String name;

		TappedSession(WebSocketSession delegate, String name) {
			super(delegate);
			this.name = name;
		}

		@Override
		public void sendMessage(WebSocketMessage<?> message) throws java.io.IOException {
			log.debug("{} >>> {}", this.name, describe(message));
			super.sendMessage(message);
		}
	}
}
