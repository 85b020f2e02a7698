/**
 * The chat page of a Stompede node, served at `/` on its WebSocket port.
 *
 * - First reads `chat/config.json` from its node: the WebSocket path (`wsPath`) and whether CONNECT needs a
 *   login (`login`). When it does, the join form asks for a login and passcode; the passcode lives only in this
 *   page's memory (never in storage), and an `Access refused` ends the attempts and shows the form again.
 * - Connects to `ws(s)://<this host:port><wsPath>`, then, when that connection drops, to the next of the fallback
 *   URLs in the page's `?servers=ws://a/ws,ws://b/ws` (round robin, every `reconnectDelay`); only URLs on the
 *   page's own host name and scheme are followed (see servers.ts for why).
 * - The sender shown is the MESSAGE's `user-id` (the broker stamps the authenticated login there); the `nick` in
 *   the body is shown only on open nodes, where nobody's name is checked anyway.
 * - A room is the topic `/topic/chat.<room>`; a message body is JSON `{"nick", "text", "time"}`.
 * - Joining asks for the last 50 messages (`x-history: 50`). Every reconnect asks for what came after the last
 *   message seen (`x-resume-after: <message-id>`), so nothing is missed; ids already shown are skipped, so
 *   nothing shows twice.
 * - User text only ever reaches the page through `textContent`.
 *
 * `@stomp/stompjs` is loaded by a plain <script> (its UMD build, copied at build time) as the global `StompJs`.
 */
import type { Client, IFrame, IMessage, StompHeaders } from '@stomp/stompjs';
import { serverList } from './servers.js';

declare global {
  interface Window {
    StompJs: typeof import('@stomp/stompjs');
  }
}

type Status = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

const HISTORY = 50;
const MAX_SHOWN = 500;
const RECONNECT_MS = 1000;
const ROOM = /^[A-Za-z0-9_-]{1,64}$/;
/** Shown as the sender, on a node that needs a login, of a message without `user-id`: its body's nick is unchecked. */
const UNVERIFIED = '(unverified)';

function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`the page lacks #${id}`);
  return e;
}

const ui = {
  status: element('status', HTMLElement),
  roomTitle: element('room-title', HTMLElement),
  joinForm: element('join', HTMLFormElement),
  joinIntro: element('join-intro', HTMLElement),
  credentials: element('credentials', HTMLFieldSetElement),
  login: element('login', HTMLInputElement),
  passcode: element('passcode', HTMLInputElement),
  nickField: element('nick-field', HTMLElement),
  nick: element('nick', HTMLInputElement),
  room: element('room', HTMLInputElement),
  joinError: element('join-error', HTMLElement),
  chat: element('chat', HTMLElement),
  messages: element('messages', HTMLOListElement),
  sendForm: element('send', HTMLFormElement),
  text: element('text', HTMLInputElement),
  leave: element('leave', HTMLButtonElement),
};

const params = new URLSearchParams(location.search);

/** What the node says of itself at `chat/config.json` (broker/web.ts). */
interface NodeConfig {
  readonly wsPath: string;
  readonly login: boolean;
}

/** A node too old to answer `chat/config.json` is taken as an open node on the default path. */
const FALLBACK_CONFIG: NodeConfig = { wsPath: '/ws', login: false };

async function fetchConfig(): Promise<NodeConfig> {
  try {
    // Relative: found under a reverse proxy's path prefix too.
    const response = await fetch('chat/config.json', { cache: 'no-store' });
    if (!response.ok) return FALLBACK_CONFIG;
    const value: unknown = await response.json();
    if (typeof value !== 'object' || value === null) return FALLBACK_CONFIG;
    const wsPath =
      'wsPath' in value && typeof value.wsPath === 'string' && value.wsPath.startsWith('/') ? value.wsPath : FALLBACK_CONFIG.wsPath;
    const login = 'login' in value && value.login === true;
    return { wsPath, login };
  } catch {
    return FALLBACK_CONFIG;
  }
}

/** Who is chatting: on an open node a nickname; on a node that needs a login, the login and its passcode. */
type Identity =
  { readonly kind: 'nick'; readonly nick: string } | { readonly kind: 'login'; readonly login: string; readonly passcode: string };

/** What a message body says: our JSON, or (from other STOMP clients) plain text with an optional `nick` header. */
function parseChat(message: IMessage): { nick: string; text: string; time: number | undefined } {
  const header = message.headers.nick;
  try {
    const value: unknown = JSON.parse(message.body);
    if (typeof value === 'object' && value !== null && 'text' in value && typeof value.text === 'string') {
      const nick = 'nick' in value && typeof value.nick === 'string' && value.nick !== '' ? value.nick : (header ?? 'anonymous');
      const time = 'time' in value && typeof value.time === 'number' ? value.time : undefined;
      return { nick, text: value.text, time };
    }
  } catch {
    // not JSON: shown as it is
  }
  return { nick: header ?? 'anonymous', text: message.body, time: undefined };
}

function clock(time: number): string {
  const d = new Date(time);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/** The node a session id names (`<nodeId>-<n>`). */
function nodeOf(frame: IFrame): string {
  const session = frame.headers.session ?? '';
  const dash = session.lastIndexOf('-');
  return dash > 0 ? session.slice(0, dash) : session;
}

/**
 * The name shown for a message's sender: the broker-stamped `user-id` when there is one; else, on an open node,
 * the self-asserted nick of the body; on a node that needs a login, a mark that the sender is not known (the body
 * could name anyone).
 */
function senderOf(message: IMessage, bodyNick: string, openNode: boolean): string {
  const userId = message.headers['user-id'];
  if (userId !== undefined && userId !== '') return userId;
  return openNode ? bodyNick : UNVERIFIED;
}

class ChatRoom {
  /** The name this page shows for itself: the nick, or once CONNECTED, the login the broker accepted. */
  #nick: string;
  readonly #openNode: boolean;
  readonly #room: string;
  readonly #topic: string;
  readonly #servers: string[];
  readonly #onRefused: (reason: string) => void;
  #server = 0;
  #attempts = 0;
  #client: Client;
  #connected = false;
  #joined = false;
  /** The id of the newest message shown: where a resumed subscription starts. */
  #lastId: string | undefined;
  /** Ids already shown (bounded like the list), so a replay that overlaps what we have adds nothing. */
  #seen = new Set<string>();
  #receipts = 0;

  /** `onRefused` is called once when the node refuses the credentials; the room has stopped by then. */
  constructor(identity: Identity, room: string, servers: string[], onRefused: (reason: string) => void) {
    this.#nick = identity.kind === 'nick' ? identity.nick : identity.login;
    this.#openNode = identity.kind === 'nick';
    this.#room = room;
    this.#topic = `/topic/chat.${room}`;
    this.#servers = servers;
    this.#onRefused = onRefused;
    // The passcode stays in this client's connect headers (page memory) for reconnects, and goes with the room.
    const connectHeaders: StompHeaders = identity.kind === 'login' ? { login: identity.login, passcode: identity.passcode } : {};
    this.#client = new window.StompJs.Client({
      brokerURL: this.#servers[0] ?? '',
      connectHeaders,
      reconnectDelay: RECONNECT_MS,
      connectionTimeout: 5000,
      heartbeatIncoming: 10_000,
      heartbeatOutgoing: 10_000,
      beforeConnect: (client) => this.#beforeConnect(client),
      onConnect: (frame) => this.#onConnect(frame),
      onStompError: (frame) => this.#onError(frame),
      onWebSocketClose: () => this.#onClose(),
    });
  }

  start(): void {
    ui.roomTitle.textContent = `#${this.#room}`;
    ui.messages.replaceChildren();
    setStatus('connecting', `connecting to ${this.#servers[0] ?? ''}`);
    this.#client.activate();
  }

  async stop(): Promise<void> {
    await this.#client.deactivate();
    setStatus('idle', 'not connected');
  }

  send(text: string): boolean {
    if (!this.#client.connected) {
      this.#system('Not connected: the message was not sent. Try again once connected.', 'error');
      return false;
    }
    this.#client.publish({
      destination: this.#topic,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ nick: this.#nick, text, time: Date.now() }),
    });
    return true;
  }

  /** Every attempt after the first goes to the next server of the list. */
  #beforeConnect(client: Client): void {
    if (this.#attempts++ > 0) this.#server = (this.#server + 1) % this.#servers.length;
    const url = this.#servers[this.#server] ?? '';
    client.brokerURL = url;
    if (this.#attempts > 1) setStatus('reconnecting', `reconnecting to ${url}`);
  }

  /**
   * An ERROR ends the connection. `Access refused` would come back on every retry with the same credentials (and
   * each retry costs the node a password hash): stop and let the user fix them. Anything else is retried.
   */
  #onError(frame: IFrame): void {
    const message = frame.headers.message ?? 'unknown';
    if (!message.startsWith('Access refused')) {
      this.#system(`Error from the server: ${message}`, 'error');
      return;
    }
    const detail = frame.body.trim();
    void this.#client.deactivate().then(() => {
      setStatus('disconnected', 'access refused');
      this.#onRefused(detail === '' ? message : `${message}: ${detail}`);
    });
  }

  #onConnect(frame: IFrame): void {
    // The login the node accepted, which is what it stamps as `user-id` on our messages.
    if (!this.#openNode && frame.headers['user-name'] !== undefined) this.#nick = frame.headers['user-name'];
    const resuming = this.#lastId !== undefined;
    const headers: StompHeaders = resuming ? { 'x-resume-after': this.#lastId ?? '' } : { 'x-history': String(HISTORY) };
    const receipt = `sub-${++this.#receipts}`;
    headers.receipt = receipt;
    const before = this.#seen.size;
    this.#client.watchForReceipt(receipt, () => {
      const n = this.#seen.size - before;
      if (!this.#joined)
        this.#system(`You joined #${this.#room} as ${this.#nick}${n > 0 ? ` (${n} earlier message${n === 1 ? '' : 's'} above)` : ''}.`);
      else this.#system(`Back in #${this.#room}: ${n} message${n === 1 ? '' : 's'} caught up.`);
      this.#joined = true;
    });
    // Not kept: the subscription ends with its connection, and each reconnect subscribes anew.
    this.#client.subscribe(this.#topic, (m) => this.#onMessage(m), headers);
    this.#connected = true;
    const node = nodeOf(frame);
    const url = this.#client.brokerURL ?? '';
    setStatus('connected', `connected to node ${node}`, url);
    if (this.#joined) this.#system(`Reconnected to node ${node} (${url}).`);
  }

  #onClose(): void {
    if (this.#connected) {
      this.#connected = false;
      if (this.#client.active) this.#system('Connection lost. Reconnecting…', 'error');
    }
    if (this.#client.active) setStatus('reconnecting', 'reconnecting…');
    else setStatus('disconnected', 'disconnected');
  }

  #onMessage(message: IMessage): void {
    const id = message.headers['message-id'] ?? '';
    if (id !== '' && this.#seen.has(id)) return;
    if (id !== '') {
      this.#seen.add(id);
      this.#lastId = id;
    }
    const parsed = parseChat(message);
    const { text, time } = parsed;
    const nick = senderOf(message, parsed.nick, this.#openNode);
    const item = document.createElement('li');
    item.className = nick === this.#nick ? 'msg mine' : 'msg';
    item.dataset.id = id;
    const when = document.createElement('time');
    when.textContent = clock(time ?? Date.now());
    if (time !== undefined) when.dateTime = new Date(time).toISOString();
    const who = document.createElement('span');
    who.className = 'nick';
    who.textContent = nick;
    const what = document.createElement('span');
    what.className = 'text';
    what.textContent = text;
    item.append(when, ' ', who, ' ', what);
    append(item);
    if (ui.messages.children.length > MAX_SHOWN) ui.messages.firstElementChild?.remove();
    if (this.#seen.size > MAX_SHOWN * 4) {
      // Keep the newest ids: the only ones a resumed subscription can repeat.
      const keep = [...this.#seen].slice(-MAX_SHOWN);
      this.#seen = new Set(keep);
    }
  }

  #system(text: string, kind: 'info' | 'error' = 'info'): void {
    const item = document.createElement('li');
    item.className = `system ${kind}`;
    item.textContent = text;
    append(item);
  }
}

/** Appends to the list, following the bottom unless the reader has scrolled up. */
function append(item: HTMLElement): void {
  const list = ui.messages;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(item);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function setStatus(state: Status, text: string, title = ''): void {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  ui.status.title = title;
}

let current: ChatRoom | undefined;
const nodeConfig = fetchConfig();

function showJoinError(text: string): void {
  ui.joinError.textContent = text;
  ui.joinError.hidden = false;
}

/** Back to the form after the node refused the login: the error shows there, the passcode must be typed again. */
function refused(room: ChatRoom, reason: string): void {
  if (current !== room) return;
  current = undefined;
  ui.chat.hidden = true;
  ui.joinForm.hidden = false;
  ui.roomTitle.textContent = '';
  ui.passcode.value = '';
  showJoinError(reason);
  ui.passcode.focus();
}

function remember(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    // storage may be disabled; remembering is only a convenience
  }
}

async function join(room: string): Promise<void> {
  const config = await nodeConfig;
  // A second submit while the first waited for the config must not open a second connection.
  if (current !== undefined) return;
  if (!ROOM.test(room)) {
    showJoinError('A room name uses letters, digits, - and _ only.');
    return;
  }
  let identity: Identity;
  if (config.login) {
    const login = ui.login.value.trim();
    if (login === '' || ui.passcode.value === '') {
      showJoinError('This node needs a login and a passcode.');
      return;
    }
    identity = { kind: 'login', login, passcode: ui.passcode.value };
    // Taken out of the form at once: the passcode lives on only inside the room's client, never in storage.
    ui.passcode.value = '';
    remember('stompede.login', login);
  } else {
    identity = { kind: 'nick', nick: ui.nick.value.trim() };
    remember('stompede.nick', identity.nick);
  }
  ui.joinError.hidden = true;
  remember('stompede.room', room);
  ui.joinForm.hidden = true;
  ui.chat.hidden = false;
  const chat: ChatRoom = new ChatRoom(identity, room, serverList(location, config.wsPath, params.get('servers')), (reason) =>
    refused(chat, reason),
  );
  current = chat;
  current.start();
  ui.text.focus();
}

ui.joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void join(ui.room.value.trim());
});

ui.sendForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (text === '' || current === undefined) return;
  if (current.send(text)) ui.text.value = '';
  ui.text.focus();
});

ui.leave.addEventListener('click', () => {
  const leaving = current;
  current = undefined;
  ui.chat.hidden = true;
  ui.joinForm.hidden = false;
  ui.roomTitle.textContent = '';
  void leaving?.stop();
});

function remembered(key: string): string {
  try {
    return localStorage.getItem(key) ?? '';
  } catch {
    return '';
  }
}

ui.nick.value = params.get('nick') ?? remembered('stompede.nick');
ui.room.value = params.get('room') ?? (remembered('stompede.room') || ui.room.value);

/** On a node that needs a login: the login and passcode fields instead of the nickname (the login is the name). */
void nodeConfig.then((config) => {
  if (!config.login) return;
  ui.joinIntro.textContent =
    'This node needs a login. Log in and pick a room: everyone in the same room sees your messages, under your login.';
  ui.credentials.hidden = false;
  ui.credentials.disabled = false;
  ui.login.required = true;
  ui.passcode.required = true;
  ui.nickField.hidden = true;
  ui.nick.required = false;
  ui.nick.disabled = true;
  ui.login.value = params.get('login') ?? remembered('stompede.login');
});
