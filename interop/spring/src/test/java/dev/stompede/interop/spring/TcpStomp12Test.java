package dev.stompede.interop.spring;

import org.springframework.scheduling.TaskScheduler;

/** ReactorNettyTcpStompClient speaking STOMP 1.2 to Stompede. */
class TcpStomp12Test extends AbstractStompClientTest {

	@Override
	protected String version() {
		return "1.2";
	}

	@Override
	protected Transport createTransport(TaskScheduler scheduler) {
		return Transport.tcp(Stompede.HOST, Stompede.tcpPort(), scheduler);
	}
}
