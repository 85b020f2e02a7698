package dev.stompede.interop.spring;

import java.net.URI;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Where the Stompede node(s) under test listen. spec/interop/spring.spec.ts starts them on free ports and passes
 * the addresses in the environment; a system property of the same name wins, for runs from an IDE.
 */
public final class Stompede {

	public static final String HOST = "127.0.0.1";

	private static final AtomicInteger counter = new AtomicInteger();

	private Stompede() {
	}

	/** STOMP over TCP of node 1 (required). */
	public static int tcpPort() {
		return port("STOMPEDE_TCP_PORT");
	}

	/** STOMP over WebSocket of node 1 (required), e.g. ws://127.0.0.1:40123/ws. */
	public static URI wsUrl() {
		return URI.create(required("STOMPEDE_WS_URL"));
	}

	/**
	 * STOMP over TCP of a second node of the same cluster, when one runs; otherwise node 1. Relay instance B uses
	 * it, so with two linked nodes a message crosses Stompede's cluster as well as Spring's instances.
	 */
	public static int tcpPort2() {
		String value = setting("STOMPEDE_TCP_PORT_2");
		return value == null || value.isBlank() ? tcpPort() : port("STOMPEDE_TCP_PORT_2");
	}

	/** Destination names unique per test run, so that tests (and reruns against one node) never hear each other. */
	public static String unique(String prefix) {
		return prefix + "." + Long.toString(ProcessHandle.current().pid(), 36) + "." + counter.incrementAndGet() + "."
				+ Long.toString(System.nanoTime() % 1_000_000_000L, 36);
	}

	private static int port(String name) {
		String value = required(name);
		try {
			return Integer.parseInt(value.trim());
		}
		catch (NumberFormatException ex) {
			throw new IllegalStateException(name + "=\"" + value + "\" is not a port number", ex);
		}
	}

	private static String required(String name) {
		String value = setting(name);
		if (value == null || value.isBlank()) {
			throw new IllegalStateException(name + " is not set: run these tests through spec/interop/spring.spec.ts, "
					+ "or start a node and pass its address (see pom.xml)");
		}
		return value;
	}

	private static String setting(String name) {
		String value = System.getProperty(name);
		return value != null ? value : System.getenv(name);
	}
}
