package dev.stompede.interop.spring.relay;

import java.security.Principal;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.messaging.handler.annotation.DestinationVariable;
import org.springframework.messaging.handler.annotation.MessageMapping;
import org.springframework.messaging.handler.annotation.SendTo;
import org.springframework.messaging.simp.SimpMessagingTemplate;
import org.springframework.messaging.simp.annotation.SendToUser;
import org.springframework.stereotype.Controller;

/** Messages to /app/... land here; every reply names the instance that produced it. */
@Controller
public class ChatController {

	private final SimpMessagingTemplate template;

	private final String instance;

	public ChatController(SimpMessagingTemplate template, @Value("${stompede.instance}") String instance) {
		this.template = template;
		this.instance = instance;
	}

	/** /app/echo/{room} → every subscriber of /topic/echo.{room}, on any instance. */
	@MessageMapping("/echo/{room}")
	@SendTo("/topic/echo.{room}")
	public String echo(@DestinationVariable String room, String text, Principal user) {
		return this.instance + " echoes " + user.getName() + ": " + text;
	}

	/** /app/whoami → /user/queue/replies of the sending session. */
	@MessageMapping("/whoami")
	@SendToUser(destinations = "/queue/replies", broadcast = false)
	public String whoami(Principal user) {
		return user.getName() + " via " + this.instance;
	}

	/** /app/whisper with body "recipient|text" → /user/{recipient}/queue/whispers, wherever the recipient is. */
	@MessageMapping("/whisper")
	public void whisper(String body, Principal from) {
		int bar = body.indexOf('|');
		String to = body.substring(0, bar);
		String text = body.substring(bar + 1);
		this.template.convertAndSendToUser(to, "/queue/whispers", from.getName() + " via " + this.instance + ": " + text);
	}
}
