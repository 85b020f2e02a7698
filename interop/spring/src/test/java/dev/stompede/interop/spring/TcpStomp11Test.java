package dev.stompede.interop.spring;

import org.springframework.scheduling.TaskScheduler;

/** ReactorNettyTcpStompClient speaking STOMP 1.1 to Stompede. */
class TcpStomp11Test extends AbstractStompClientTest {

	@Override
	protected String version() {
		return "1.1";
	}

	@Override
	protected Transport createTransport(TaskScheduler scheduler) {
		return Transport.tcp(Stompede.HOST, Stompede.tcpPort(), scheduler);
	}
}
