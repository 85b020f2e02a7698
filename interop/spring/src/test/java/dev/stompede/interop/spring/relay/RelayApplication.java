package dev.stompede.interop.spring.relay;

import java.util.Map;

import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.web.servlet.context.ServletWebServerApplicationContext;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.annotation.Import;

/**
 * A minimal Spring chat application whose message broker is Stompede, reached through Spring's STOMP broker
 * relay. Several instances run side by side (each on its own HTTP port, each with its own relay connections),
 * the way a horizontally scaled Spring service runs behind a load balancer.
 */
@SpringBootConfiguration
@EnableAutoConfiguration
@Import({ RelayBrokerConfig.class, ChatController.class, BrokerAvailability.class })
public class RelayApplication {

	/** A started instance: its Spring context and the port of its own WebSocket endpoint. */
	public record Instance(String name, ConfigurableApplicationContext context, int httpPort) implements AutoCloseable {

		public String stompUrl(String user) {
			return "ws://127.0.0.1:" + this.httpPort + RelayBrokerConfig.ENDPOINT + "?user=" + user;
		}

		public BrokerAvailability availability() {
			return this.context.getBean(BrokerAvailability.class);
		}

		@Override
		public void close() {
			this.context.close();
		}
	}

	/** Starts one instance on a free loopback port, relaying /topic and /queue to Stompede at relayPort. */
	public static Instance start(String name, int relayPort) {
		ConfigurableApplicationContext context = new SpringApplicationBuilder(RelayApplication.class)
			.properties(Map.of(
					"server.address", "127.0.0.1",
					"server.port", "0",
					"spring.main.banner-mode", "off",
					"spring.application.name", "relay-" + name,
					"stompede.instance", name,
					"stompede.relay.host", "127.0.0.1",
					"stompede.relay.port", String.valueOf(relayPort)))
			.run();
		int port = ((ServletWebServerApplicationContext) context).getWebServer().getPort();
		return new Instance(name, context, port);
	}
}
