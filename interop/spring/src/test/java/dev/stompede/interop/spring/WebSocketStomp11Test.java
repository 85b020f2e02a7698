package dev.stompede.interop.spring;

import org.springframework.scheduling.TaskScheduler;

/** WebSocketStompClient (StandardWebSocketClient, no subprotocol offered) speaking STOMP 1.1 to Stompede. */
class WebSocketStomp11Test extends AbstractStompClientTest {

	@Override
	protected String version() {
		return "1.1";
	}

	@Override
	protected Transport createTransport(TaskScheduler scheduler) {
		return Transport.webSocket(Stompede.wsUrl().toString(), scheduler);
	}
}
