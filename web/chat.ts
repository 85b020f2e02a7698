/**
 * The chat page of a Stompede node, served at `/` on its WebSocket port.
 *
 * - Connects to `ws(s)://<this host:port>/ws`, then, when that connection drops, to the next of the fallback
 *   URLs in the page's `?servers=ws://a/ws,ws://b/ws` (round robin, every `reconnectDelay`).
 * - A room is the topic `/topic/chat.<room>`; a message body is JSON `{"nick", "text", "time"}`.
 * - Joining asks for the last 50 messages (`x-history: 50`). Every reconnect asks for what came after the last
 *   message seen (`x-resume-after: <message-id>`), so nothing is missed; ids already shown are skipped, so
 *   nothing shows twice.
 * - User text only ever reaches the page through `textContent`.
 *
 * `@stomp/stompjs` is loaded by a plain <script> (its UMD build, copied at build time) as the global `StompJs`.
 */
import type { Client, IFrame, IMessage, StompHeaders, StompSubscription } from '@stomp/stompjs';

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

function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`the page lacks #${id}`);
  return e;
}

const ui = {
  status: element('status', HTMLElement),
  roomTitle: element('room-title', HTMLElement),
  joinForm: element('join', HTMLFormElement),
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

/** This node first, then the fallbacks of `?servers=` (only ws:// and wss:// URLs), without repeats. */
function serverList(): string[] {
  const own = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const extra = (params.get('servers') ?? '').split(',').map((s) => s.trim()).filter((s) => /^wss?:\/\/[^\s]+$/.test(s));
  return [...new Set([own, ...extra])];
}

/** What a message body says: our JSON, or (from other STOMP clients) plain text with an optional `nick` header. */
function parseChat(message: IMessage): { nick: string; text: string; time: number | undefined } {
  const header = message.headers.nick;
  try {
    const value: unknown = JSON.parse(message.body);
    if (typeof value === 'object' && value !== null && 'text' in value && typeof value.text === 'string') {
      const nick = 'nick' in value && typeof value.nick === 'string' && value.nick !== '' ? value.nick : header ?? 'anonymous';
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

class ChatRoom {
  readonly #nick: string;
  readonly #room: string;
  readonly #topic: string;
  readonly #servers = serverList();
  #server = 0;
  #attempts = 0;
  #client: Client;
  #subscription: StompSubscription | undefined;
  #connected = false;
  #joined = false;
  /** The id of the newest message shown: where a resumed subscription starts. */
  #lastId: string | undefined;
  /** Ids already shown (bounded like the list), so a replay that overlaps what we have adds nothing. */
  #seen = new Set<string>();
  #receipts = 0;

  constructor(nick: string, room: string) {
    this.#nick = nick;
    this.#room = room;
    this.#topic = `/topic/chat.${room}`;
    this.#client = new window.StompJs.Client({
      brokerURL: this.#servers[0] ?? '',
      reconnectDelay: RECONNECT_MS,
      connectionTimeout: 5000,
      heartbeatIncoming: 10_000,
      heartbeatOutgoing: 10_000,
      beforeConnect: (client) => this.#beforeConnect(client),
      onConnect: (frame) => this.#onConnect(frame),
      onStompError: (frame) => this.#system(`Error from the server: ${frame.headers.message ?? 'unknown'}`, 'error'),
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

  #onConnect(frame: IFrame): void {
    const resuming = this.#lastId !== undefined;
    const headers: StompHeaders = resuming ? { 'x-resume-after': this.#lastId ?? '' } : { 'x-history': String(HISTORY) };
    const receipt = `sub-${++this.#receipts}`;
    headers.receipt = receipt;
    const before = this.#seen.size;
    this.#client.watchForReceipt(receipt, () => {
      const n = this.#seen.size - before;
      if (!this.#joined) this.#system(`You joined #${this.#room} as ${this.#nick}${n > 0 ? ` (${n} earlier message${n === 1 ? '' : 's'} above)` : ''}.`);
      else this.#system(`Back in #${this.#room}: ${n} message${n === 1 ? '' : 's'} caught up.`);
      this.#joined = true;
    });
    this.#subscription = this.#client.subscribe(this.#topic, (m) => this.#onMessage(m), headers);
    this.#connected = true;
    const node = nodeOf(frame);
    const url = this.#client.brokerURL ?? '';
    setStatus('connected', `connected to node ${node}`, url);
    if (this.#joined) this.#system(`Reconnected to node ${node} (${url}).`);
  }

  #onClose(): void {
    this.#subscription = undefined;
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
    const { nick, text, time } = parseChat(message);
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

function join(nick: string, room: string): void {
  if (!ROOM.test(room)) {
    ui.joinError.textContent = 'A room name uses letters, digits, - and _ only.';
    ui.joinError.hidden = false;
    return;
  }
  ui.joinError.hidden = true;
  try {
    localStorage.setItem('stompede.nick', nick);
    localStorage.setItem('stompede.room', room);
  } catch {
    // storage may be disabled; remembering is only a convenience
  }
  ui.joinForm.hidden = true;
  ui.chat.hidden = false;
  current = new ChatRoom(nick, room);
  current.start();
  ui.text.focus();
}

ui.joinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  join(ui.nick.value.trim(), ui.room.value.trim());
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
