package dev.stompede.interop.spring.relay;

import java.security.Principal;
import java.util.Map;

import io.netty.handler.logging.LogLevel;
import reactor.netty.transport.logging.AdvancedByteBufFormat;

import org.springframework.beans.factory.DisposableBean;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.server.ServerHttpRequest;
import org.springframework.messaging.simp.config.MessageBrokerRegistry;
import org.springframework.messaging.simp.config.StompBrokerRelayRegistration;
import org.springframework.messaging.simp.stomp.StompReactorNettyCodec;
import org.springframework.messaging.tcp.reactor.ReactorNettyTcpClient;
import org.springframework.scheduling.concurrent.ThreadPoolTaskScheduler;
import org.springframework.web.socket.WebSocketHandler;
import org.springframework.web.socket.config.annotation.EnableWebSocketMessageBroker;
import org.springframework.web.socket.config.annotation.StompEndpointRegistry;
import org.springframework.web.socket.config.annotation.WebSocketMessageBrokerConfigurer;
import org.springframework.web.socket.server.support.DefaultHandshakeHandler;
import org.springframework.web.util.UriComponentsBuilder;

/**
 * The configuration a Spring application writes to use an external STOMP broker: /topic and /queue go to
 * Stompede through the relay, /app goes to @MessageMapping methods, /user/... is resolved per session.
 */
@Configuration
@EnableWebSocketMessageBroker
public class RelayBrokerConfig implements WebSocketMessageBrokerConfigurer, DisposableBean {

	public static final String ENDPOINT = "/stomp";

	/** Short system heart-beats, so that an idle test already spans several intervals. */
	public static final long SYSTEM_HEARTBEAT_MS = 1_000;

	private final String relayHost;

	private final int relayPort;

	/**
	 * Lets the relay beat for a client session whose frames all go to /app (spring-framework#22822): such frames
	 * stop at the application, and a busy client never idles long enough to beat itself, so the broker hears
	 * nothing on that session and (Stompede, like Artemis) closes it. Spring 6.2 checks every 5 s and resets its
	 * per-session count only when the session's send interval is longer than that, so this covers the usual
	 * 10000,10000 clients but not clients with heart-beats under 5 s.
	 */
	private final ThreadPoolTaskScheduler relayScheduler = new ThreadPoolTaskScheduler();

	public RelayBrokerConfig(@Value("${stompede.relay.host}") String relayHost,
			@Value("${stompede.relay.port}") int relayPort) {
		this.relayHost = relayHost;
		this.relayPort = relayPort;
		this.relayScheduler.setPoolSize(1);
		this.relayScheduler.setThreadNamePrefix("relay-heartbeat-");
		this.relayScheduler.setDaemon(true);
		this.relayScheduler.initialize();
	}

	@Override
	public void destroy() {
		this.relayScheduler.shutdown();
	}

	@Override
	public void registerStompEndpoints(StompEndpointRegistry registry) {
		// Plain WebSocket (no SockJS); the user name comes from the handshake, as an authenticated HTTP user would.
		registry.addEndpoint(ENDPOINT).setHandshakeHandler(new QueryUserHandshakeHandler());
	}

	@Override
	public void configureMessageBroker(MessageBrokerRegistry registry) {
		registry.setApplicationDestinationPrefixes("/app");
		registry.setUserDestinationPrefix("/user");
		registry.setPreservePublishOrder(true);
		StompBrokerRelayRegistration relay = registry.enableStompBrokerRelay("/topic", "/queue")
			.setRelayHost(this.relayHost)
			.setRelayPort(this.relayPort)
			.setSystemHeartbeatSendInterval(SYSTEM_HEARTBEAT_MS)
			.setSystemHeartbeatReceiveInterval(SYSTEM_HEARTBEAT_MS)
			.setTaskScheduler(this.relayScheduler)
			// Several instances: a user may be connected to any of them (Spring docs, "Multiple Application Servers").
			.setUserDestinationBroadcast("/topic/unresolved-user-destination")
			.setUserRegistryBroadcast("/topic/simp-user-registry");
		if ("1".equals(System.getenv("STOMPEDE_WIRETAP"))) {
			// Same host and port, but every byte between relay and broker goes to target/stomp-frames.log.
			String host = this.relayHost;
			int port = this.relayPort;
			relay.setTcpClient(new ReactorNettyTcpClient<>(
					c -> c.host(host).port(port)
						.wiretap("stompede.wire.relay", LogLevel.DEBUG, AdvancedByteBufFormat.TEXTUAL),
					new StompReactorNettyCodec()));
		}
	}

	/** Principal = the {@code user} query parameter of the handshake URL (a stand-in for real authentication). */
	static final class QueryUserHandshakeHandler extends DefaultHandshakeHandler {

		@Override
		protected Principal determineUser(ServerHttpRequest request, WebSocketHandler handler,
				Map<String, Object> attributes) {
			String user = UriComponentsBuilder.fromUri(request.getURI()).build().getQueryParams().getFirst("user");
			if (user == null || user.isBlank()) {
				return super.determineUser(request, handler, attributes);
			}
			return () -> user;
		}
	}
}
