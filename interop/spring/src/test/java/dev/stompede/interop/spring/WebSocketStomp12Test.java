package dev.stompede.interop.spring;

import org.springframework.scheduling.TaskScheduler;

/** WebSocketStompClient (StandardWebSocketClient, no subprotocol offered) speaking STOMP 1.2 to Stompede. */
class WebSocketStomp12Test extends AbstractStompClientTest {

	@Override
	protected String version() {
		return "1.2";
	}

	@Override
	protected Transport createTransport(TaskScheduler scheduler) {
		return Transport.webSocket(Stompede.wsUrl().toString(), scheduler);
	}
}
