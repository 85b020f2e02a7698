package dev.stompede.interop.spring;

import java.util.List;
import java.util.concurrent.CompletableFuture;

import io.netty.handler.logging.LogLevel;
import reactor.netty.transport.logging.AdvancedByteBufFormat;

import org.springframework.messaging.converter.ByteArrayMessageConverter;
import org.springframework.messaging.converter.CompositeMessageConverter;
import org.springframework.messaging.converter.MessageConverter;
import org.springframework.messaging.converter.StringMessageConverter;
import org.springframework.messaging.simp.stomp.ReactorNettyTcpStompClient;
import org.springframework.messaging.simp.stomp.StompClientSupport;
import org.springframework.messaging.simp.stomp.StompHeaders;
import org.springframework.messaging.simp.stomp.StompReactorNettyCodec;
import org.springframework.messaging.simp.stomp.StompSession;
import org.springframework.messaging.simp.stomp.StompSessionHandler;
import org.springframework.messaging.tcp.reactor.ReactorNettyTcpClient;
import org.springframework.scheduling.TaskScheduler;
import org.springframework.web.socket.WebSocketHttpHeaders;
import org.springframework.web.socket.client.standard.StandardWebSocketClient;
import org.springframework.web.socket.messaging.WebSocketStompClient;

/** One of Spring's STOMP clients, pointed at a Stompede listener. */
public abstract class Transport implements AutoCloseable {

	/** Text bodies as String (text/plain;charset=UTF-8), everything else as byte[]. */
	public static MessageConverter converter() {
		return new CompositeMessageConverter(List.of(new StringMessageConverter(), new ByteArrayMessageConverter()));
	}

	public abstract String name();

	protected abstract StompClientSupport client();

	public abstract CompletableFuture<StompSession> connect(StompHeaders connectHeaders, StompSessionHandler handler);

	protected static <C extends StompClientSupport> C configure(C client, TaskScheduler scheduler) {
		client.setMessageConverter(converter());
		// Receipt tracking and heart-beats need a scheduler; with one, Spring's default heart-beat is 10000,10000.
		client.setTaskScheduler(scheduler);
		client.setReceiptTimeLimit(10_000);
		return client;
	}

	/** WebSocketStompClient over the JSR-356 client (Tomcat's), with every WebSocket message logged. */
	public static Transport webSocket(String url, TaskScheduler scheduler) {
		WebSocketStompClient client = configure(
				new WebSocketStompClient(new WireTap(new StandardWebSocketClient(), "client")), scheduler);
		return new Transport() {
			@Override
			public String name() {
				return "WebSocket " + url;
			}

			@Override
			protected StompClientSupport client() {
				return client;
			}

			@Override
			public CompletableFuture<StompSession> connect(StompHeaders connectHeaders, StompSessionHandler handler) {
				return client.connectAsync(url, new WebSocketHttpHeaders(), connectHeaders, handler);
			}

			@Override
			public void close() {
				client.stop();
			}
		};
	}

	/** ReactorNettyTcpStompClient, with Reactor Netty's wiretap logging every byte (logger stompede.wire.tcp). */
	public static Transport tcp(String host, int port, TaskScheduler scheduler) {
		ReactorNettyTcpClient<byte[]> tcp = new ReactorNettyTcpClient<>(
				c -> c.host(host).port(port).wiretap("stompede.wire.tcp", LogLevel.DEBUG, AdvancedByteBufFormat.TEXTUAL),
				new StompReactorNettyCodec());
		ReactorNettyTcpStompClient client = configure(new ReactorNettyTcpStompClient(tcp), scheduler);
		return new Transport() {
			@Override
			public String name() {
				return "TCP " + host + ":" + port;
			}

			@Override
			protected StompClientSupport client() {
				return client;
			}

			@Override
			public CompletableFuture<StompSession> connect(StompHeaders connectHeaders, StompSessionHandler handler) {
				return client.connectAsync(connectHeaders, handler);
			}

			@Override
			public void close() {
				client.shutdown();
			}
		};
	}

	@Override
	public abstract void close();
}
