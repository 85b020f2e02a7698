package dev.stompede.interop.spring.relay;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import org.springframework.context.event.EventListener;
import org.springframework.messaging.simp.broker.BrokerAvailabilityEvent;
import org.springframework.stereotype.Component;

/**
 * Records the relay's BrokerAvailabilityEvents: true once its "system" session to Stompede is CONNECTED, false
 * when that session is lost (for example after missed heart-beats).
 */
@Component
public class BrokerAvailability {

	private final List<Boolean> events = new CopyOnWriteArrayList<>();

	@EventListener
	public void on(BrokerAvailabilityEvent event) {
		this.events.add(event.isBrokerAvailable());
	}

	public List<Boolean> events() {
		return List.copyOf(this.events);
	}

	/** Waits until the latest event says the broker is available. */
	public boolean awaitAvailable(long timeout, TimeUnit unit) throws InterruptedException {
		long deadline = System.nanoTime() + unit.toNanos(timeout);
		while (System.nanoTime() < deadline) {
			if (!this.events.isEmpty() && this.events.get(this.events.size() - 1)) {
				return true;
			}
			Thread.sleep(20);
		}
		return false;
	}
}
