package dev.stompede.interop.spring;

import java.io.PrintStream;
import java.lang.reflect.Type;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

import org.springframework.messaging.converter.StringMessageConverter;
import org.springframework.messaging.simp.stomp.StompFrameHandler;
import org.springframework.messaging.simp.stomp.StompHeaders;
import org.springframework.messaging.simp.stomp.StompSession;
import org.springframework.messaging.simp.stomp.StompSessionHandlerAdapter;
import org.springframework.web.socket.client.standard.StandardWebSocketClient;
import org.springframework.web.socket.messaging.WebSocketStompClient;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The Spring snippet of README.md ("## Connecting"), line for line: spec/docs/readme.spec.ts checks that every
 * line of the README's java block appears here in order, with only the port 15674 replaced by {@code wsPort}.
 * The snippet prints what it receives; System.out is tapped to see that the message it sent came back.
 */
class ReadmeSnippetTest {

	@Test
	void springSnippetPrintsTheMessageItSent() throws Exception {
		int wsPort = Stompede.wsUrl().getPort();
		BlockingQueue<String> printed = new LinkedBlockingQueue<>();
		PrintStream original = System.out;
		System.setOut(new PrintStream(original, true) {
			@Override
			public void println(Object x) {
				printed.add(String.valueOf(x));
				super.println(x);
			}

			@Override
			public void println(String x) {
				printed.add(String.valueOf(x));
				super.println(x);
			}
		});
		try {
			// From README.md:
			WebSocketStompClient stomp = new WebSocketStompClient(new StandardWebSocketClient());
			stomp.setMessageConverter(new StringMessageConverter());
			StompSession session = stomp.connectAsync("ws://127.0.0.1:" + wsPort + "/ws", new StompSessionHandlerAdapter() {}).get();
			session.subscribe("/topic/chat.lobby", new StompFrameHandler() {
			  public Type getPayloadType(StompHeaders h) { return String.class; }
			  public void handleFrame(StompHeaders h, Object body) { System.out.println(body); }
			});
			session.send("/topic/chat.lobby", "hello");
			// End of the README's lines.

			assertEquals("hello", printed.poll(10, TimeUnit.SECONDS), "what the snippet printed within 10 s");
			session.disconnect();
			stomp.stop();
		}
		finally {
			System.setOut(original);
		}
	}
}
