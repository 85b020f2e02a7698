import { expect } from 'chai';
import { uniqueName } from '../support/broker.js';
import { type RawClient, stompFrame } from '../support/raw.js';
import {
  LEGACY,
  V10,
  V11,
  V12,
  expectError,
  expectQuiet,
  expectReceipt,
  header,
  messageWire,
  nextMessage,
  sleep,
  subscribe,
  useBroker,
} from './harness.js';

const PARSE = (what: string): string => `The frame could not be parsed: ${what}.\n`;

describe('broker › wire › framing', () => {
  const h = useBroker();

  it('processes frames pipelined in the same packet as CONNECT in order (anchors §3.17)', async () => {
    const q = `/queue/${uniqueName()}`;
    const c = await h.raw();
    c.send(
      Buffer.concat([
        stompFrame('CONNECT', V12),
        stompFrame('SUBSCRIBE', { destination: q, id: 's', receipt: 'r1' }),
        stompFrame('SEND', { destination: q, receipt: 'r2' }, 'one'),
        stompFrame('SEND', { destination: q }, 'two'),
        stompFrame('DISCONNECT', { receipt: 'r3' }),
      ]),
    );
    expect((await c.nextFrame()).command).to.equal('CONNECTED');
    await expectReceipt(c, 'r1');
    const one = await nextMessage(c);
    expect(one.raw.equals(messageWire({ subscription: 's', destination: q, messageId: header(one, 'message-id'), body: 'one' }))).to.equal(
      true,
    );
    await expectReceipt(c, 'r2');
    expect((await nextMessage(c)).text).to.equal('two');
    await expectReceipt(c, 'r3');
    await c.closed();
    expect(c.closedByServer).to.equal(true);
  });

  it('reassembles frames that arrive a few bytes at a time', async () => {
    const q = `/queue/${uniqueName()}`;
    const c = await h.raw();
    const bytes = Buffer.concat([
      stompFrame('CONNECT', V12),
      stompFrame('SUBSCRIBE', { destination: q, id: 's' }),
      stompFrame('SEND', { destination: q, 'content-length': '5' }, 'a\0b\nc'),
    ]);
    for (let at = 0; at < bytes.length; at += 7) {
      c.send(bytes.subarray(at, at + 7));
      await sleep(1);
    }
    expect((await c.nextFrame()).command).to.equal('CONNECTED');
    expect((await nextMessage(c)).body.equals(Buffer.from('a\0b\nc'))).to.equal(true);
  });

  it('accepts EOLs after the NUL of a frame (S2) and CRLF line ends in 1.2 (S1)', async () => {
    const q = `/queue/${uniqueName()}`;
    const c = await h.client(V12);
    await subscribe(c, q, 's');
    c.send(`SEND\r\ndestination:${q}\r\n\r\nfirst\0\n\r\n\n\nSEND\ndestination:${q}\n\nsecond\0\r\n`);
    expect((await nextMessage(c)).text).to.equal('first');
    expect((await nextMessage(c)).text).to.equal('second');
  });

  it('reads exactly content-length octets, NULs included, and passes them on (S9, S10)', async () => {
    const q = `/queue/${uniqueName()}`;
    const c = await h.client(V12);
    await subscribe(c, q, 's');
    const body = Buffer.from([0x61, 0x00, 0x62, 0x00, 0x00, 0xff, 0x0a]);
    c.send(Buffer.concat([Buffer.from(`SEND\ndestination:${q}\ncontent-length:7\n\n`), body, Buffer.from([0])]));
    const m = await nextMessage(c);
    expect(m.raw.equals(messageWire({ subscription: 's', destination: q, messageId: header(m, 'message-id'), body }))).to.equal(true);
  });

  it('adds content-length to a MESSAGE whose SEND had none, counting octets, and keeps one when it had one', async () => {
    const q = `/queue/${uniqueName()}`;
    const c = await h.client(V12);
    await subscribe(c, q, 's');
    c.send(`SEND\ndestination:${q}\n\nh\u00e9llo\0SEND\ndestination:${q}\ncontent-length:3\n\nabc\0SEND\ndestination:${q}\n\n\0`);
    const a = await nextMessage(c);
    expect(
      a.raw.equals(messageWire({ subscription: 's', destination: q, messageId: header(a, 'message-id'), body: 'h\u00e9llo' })),
    ).to.equal(true);
    expect(header(a, 'content-length')).to.equal('6');
    const b = await nextMessage(c);
    expect(b.raw.toString()).to.equal(
      `MESSAGE\nsubscription:s\ndestination:${q}\nmessage-id:${header(b, 'message-id')}\ncontent-length:3\n\nabc\0`,
    );
    const e = await nextMessage(c);
    expect(e.raw.toString()).to.equal(
      `MESSAGE\nsubscription:s\ndestination:${q}\nmessage-id:${header(e, 'message-id')}\ncontent-length:0\n\n\0`,
    );
  });

  it("passes user headers through on MESSAGE in order, and not the frame's own (S33, S49)", async () => {
    const q = `/queue/${uniqueName()}`;
    const c = await h.client(V12);
    await subscribe(c, q, 's');
    c.send(
      stompFrame(
        'SEND',
        [
          ['destination', q],
          ['content-type', 'text/plain;charset=utf-8'],
          ['x-b', '2'],
          ['receipt', 'rr'],
          ['x-a', '1'],
          ['message-id', 'forged'],
          ['subscription', 'forged'],
          ['ack', 'forged'],
          ['priority', '9'],
        ],
        'hi',
      ),
    );
    // The SEND is processed (delivered to the subscriber, here the same connection) before its RECEIPT goes out.
    const m = await nextMessage(c);
    await expectReceipt(c, 'rr');
    expect(m.raw.toString()).to.equal(
      messageWire({
        subscription: 's',
        destination: q,
        messageId: header(m, 'message-id'),
        body: 'hi',
        headers: [
          ['content-type', 'text/plain;charset=utf-8'],
          ['x-b', '2'],
          ['x-a', '1'],
          ['priority', '9'],
        ],
      }).toString(),
    );
  });

  it('uses the first of repeated headers, destination included (S14)', async () => {
    const a = `/queue/${uniqueName()}`;
    const b = `/queue/${uniqueName()}`;
    const c = await h.client(V12);
    await subscribe(c, a, 'sa');
    await subscribe(c, b, 'sb');
    c.send(`SEND\ndestination:${a}\ndestination:${b}\nx:1\nx:2\n\nbody\0`);
    const m = await nextMessage(c);
    expect(m.raw.toString()).to.equal(
      messageWire({
        subscription: 'sa',
        destination: a,
        messageId: header(m, 'message-id'),
        headers: [['x', '1']],
        body: 'body',
      }).toString(),
    );
    await expectQuiet(c);
  });

  it('never trims header names or values (S7)', async () => {
    const q = `/queue/${uniqueName()}`;
    const c = await h.client(V12);
    await subscribe(c, q, 's');
    c.send(`SEND\ndestination:${q}\n x : y \nz:\n\n\0`);
    const m = await nextMessage(c);
    expect(m.raw.toString()).to.equal(
      messageWire({
        subscription: 's',
        destination: q,
        messageId: header(m, 'message-id'),
        headers: [
          [' x ', ' y '],
          ['z', ''],
        ],
        body: '',
      }).toString(),
    );
  });

  it('refuses a destination with surrounding spaces instead of trimming it', async () => {
    const c = await h.client(V12);
    c.send('SEND\ndestination: /queue/x\nreceipt:r\n\nhi\0');
    await expectError(c, {
      message: 'invalid destination " /queue/x"',
      receiptId: 'r',
      body:
        'Destinations must start with /topic/ (publish-subscribe) or /queue/ (one consumer per message), followed by a name; ' +
        '/kafka/<topic> and /redis/<channel> address a Kafka topic or Redis channel directly.\n',
    });
  });

  it('generates message-ids with no colon, backslash or whitespace, unique per message (anchors §3.11)', async () => {
    const q = `/queue/${uniqueName()}`;
    const c = await h.client(V12);
    await subscribe(c, q, 's');
    for (let i = 0; i < 20; i++) c.send(stompFrame('SEND', { destination: q }, String(i)));
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const m = await nextMessage(c);
      expect(m.text).to.equal(String(i));
      const id = header(m, 'message-id');
      expect(id).to.match(/^[^:\\\s]+$/);
      ids.add(id);
    }
    expect(ids.size).to.equal(20);
  });
});

describe('broker › wire › header escaping per version (S4–S6, V2–V4)', () => {
  const h = useBroker();

  /** A subscriber of each version on one topic. */
  async function subscribers(topic: string): Promise<Record<'v10' | 'v11' | 'v12', RawClient>> {
    const v10 = await h.client(LEGACY);
    const v11 = await h.client(V11);
    const v12 = await h.client(V12);
    for (const c of [v10, v11, v12]) await subscribe(c, topic, 'sub');
    return { v10, v11, v12 };
  }

  it('1.2: unescapes \\r \\n \\c \\\\ on the way in and escapes them again on the way out', async () => {
    const name = uniqueName();
    const topic = `/topic/${name}`;
    const sub = await h.client(V12);
    // The subscription id and the destination themselves are escaped too.
    sub.send(`SUBSCRIBE\ndestination:/topic/${name}\\c1\nid:s\\c1\nreceipt:ok\\c1\n\n\0`);
    const receipt = await sub.nextFrame();
    expect(receipt.raw.toString()).to.equal('RECEIPT\nreceipt-id:ok\\c1\n\n\0');
    expect(receipt.headers.get('receipt-id')).to.equal('ok:1');
    const pub = await h.client(V12);
    pub.send(`SEND\ndestination:${topic}\\c1\nk\\cx:a\\\\b\\nc\\rd\n\nhi\0`);
    const m = await nextMessage(sub);
    expect(m.raw.toString()).to.equal(
      messageWire({
        subscription: 's\\c1',
        destination: `${topic}\\c1`,
        messageId: header(m, 'message-id'),
        headers: [['k\\cx', 'a\\\\b\\nc\\rd']],
        body: 'hi',
      }).toString(),
    );
    expect(m.headers.get('k:x')).to.equal('a\\b\nc\rd');
    expect(m.headers.get('destination')).to.equal(`${topic}:1`);
  });

  it('1.2 to 1.1 subscriber: \\n \\c \\\\ escaped, CR sent as it is', async () => {
    const topic = `/topic/${uniqueName()}`;
    const { v11 } = await subscribers(topic);
    const pub = await h.client(V12);
    pub.send(`SEND\ndestination:${topic}\nk\\cx:a\\\\b\\nc\\rd\n\nhi\0`);
    const m = await nextMessage(v11);
    expect(m.raw.toString()).to.equal(
      messageWire({
        subscription: 'sub',
        destination: topic,
        messageId: header(m, 'message-id'),
        headers: [['k\\cx', 'a\\\\b\\nc\rd']],
        body: 'hi',
      }).toString(),
    );
  });

  it('1.1: \\n \\c \\\\ are escapes; \\r is an undefined escape and fatal', async () => {
    const topic = `/topic/${uniqueName()}`;
    const { v11, v12 } = await subscribers(topic);
    const pub = await h.client(V11);
    pub.send(`SEND\ndestination:${topic}\nk\\cx:a\\\\b\\nc\n\nhi\0`);
    const m = await nextMessage(v12);
    expect(m.headers.get('k:x')).to.equal('a\\b\nc');
    expect((await nextMessage(v11)).raw.toString()).to.contain('\nk\\cx:a\\\\b\\nc\n');
    pub.send(`SEND\ndestination:${topic}\nx:a\\rb\nreceipt:r\n\nhi\0`);
    await expectError(pub, { message: 'undefined escape sequence in header "x"', body: PARSE('undefined escape sequence in header "x"') });
    await expectQuiet(v12);
  });

  it('1.0: nothing is unescaped or escaped; a backslash is just a byte', async () => {
    const topic = `/topic/${uniqueName()}`;
    const { v10, v12 } = await subscribers(topic);
    const pub = await h.client(LEGACY);
    pub.send(`SEND\ndestination:${topic}\nk\\c:a\\tb\\\\\n\nhi\0`);
    const old = await nextMessage(v10);
    expect(old.raw.toString()).to.equal(
      messageWire({
        subscription: 'sub',
        destination: topic,
        messageId: header(old, 'message-id'),
        headers: [['k\\c', 'a\\tb\\\\']],
        body: 'hi',
      }).toString(),
    );
    const m = await nextMessage(v12);
    expect(m.raw.toString()).to.contain('\nk\\\\c:a\\\\tb\\\\\\\\\n');
    expect(m.headers.get('k\\c')).to.equal('a\\tb\\\\');
  });

  it('1.0: a header value with colons keeps everything after the first colon', async () => {
    const q = `/queue/${uniqueName()}`;
    const c = await h.client(V10);
    await subscribe(c, q, 's');
    c.send(`SEND\ndestination:${q}\nurl:http://x:80/\n\n\0`);
    const m = await nextMessage(c);
    expect(m.raw.toString()).to.contain('\nurl:http://x:80/\n');
  });

  for (const [label, headers] of [
    ['1.2', V12],
    ['1.1', V11],
  ] as const) {
    it(`${label}: an undefined escape (\\t) is fatal: ERROR, then close (S5)`, async () => {
      const c = await h.client(headers);
      c.send('SEND\ndestination:/queue/x\nreceipt:r\nbad:a\\tb\n\nhi\0');
      // The frame never parsed, so there is no frame to take a receipt-id from.
      await expectError(c, {
        message: 'undefined escape sequence in header "bad"',
        body: PARSE('undefined escape sequence in header "bad"'),
      });
    });
  }

  it("escapes the ERROR message header for the session's version", async () => {
    const c = await h.client(V12);
    c.send('UNSUBSCRIBE\nid:a\\cb\nreceipt:r\\c1\n\n\0');
    const frame = await expectError(c, { message: 'no subscription with id "a:b"', receiptId: 'r:1' });
    expect(frame.raw.toString()).to.match(/^ERROR\nmessage:no subscription with id "a\\cb"\nreceipt-id:r\\c1\n/);
  });
});

describe('broker › wire › frames the broker refuses', () => {
  const h = useBroker();

  for (const command of ['SUBSCRIBE', 'UNSUBSCRIBE', 'ACK', 'NACK', 'BEGIN', 'COMMIT', 'ABORT', 'DISCONNECT']) {
    it(`refuses a body on ${command} (S8), with receipt-id`, async () => {
      const c = await h.client(V12);
      c.send(stompFrame(command, { destination: '/topic/x', id: '1', transaction: 't', receipt: `r-${command}` }, 'body'));
      await expectError(c, {
        message: `${command} frame must not have a body`,
        receiptId: `r-${command}`,
        body: 'Only SEND frames may carry a body.\n',
      });
    });
  }

  it('refuses a body on CONNECT (S8)', async () => {
    const c = await h.raw();
    c.send('CONNECT\naccept-version:1.2\nhost:localhost\n\nhello\0');
    await expectError(c, { message: 'CONNECT frame must not have a body', body: 'Only SEND frames may carry a body.\n' });
  });

  it('accepts an empty body declared with content-length:0 on a non-SEND frame', async () => {
    const c = await h.client(V12);
    c.send(`SUBSCRIBE\ndestination:/topic/${uniqueName()}\nid:1\ncontent-length:0\nreceipt:r\n\n\0`);
    await expectReceipt(c, 'r');
  });

  for (const command of ['FOO', 'send', 'MESSAGE', 'CONNECTED', 'RECEIPT', 'ERROR']) {
    it(`refuses the unknown command ${command} (S3, S26)`, async () => {
      const c = await h.client(V12);
      c.send(`${command}\nreceipt:u\n\n\0`);
      await expectError(c, {
        message: `unknown command "${command}"`,
        receiptId: 'u',
        body: 'Client frames are CONNECT, STOMP, SEND, SUBSCRIBE, UNSUBSCRIBE, ACK, NACK, BEGIN, COMMIT, ABORT and DISCONNECT.\n',
      });
    });
  }

  it('refuses SEND without destination, with receipt-id (S31)', async () => {
    const c = await h.client(V12);
    c.send('SEND\nreceipt:r-7\n\nhi\0');
    await expectError(c, {
      message: 'SEND frame is missing the "destination" header',
      receiptId: 'r-7',
      body: 'The destination header is required on SEND.\n',
    });
  });

  for (const destination of ['/exchange/x', '/queue/', '/topic/', 'queue/x', '/temp-queue/x', '']) {
    it(`refuses the destination ${JSON.stringify(destination)} (S34)`, async () => {
      const c = await h.client(V12);
      c.send(stompFrame('SEND', { destination, receipt: 'd' }, 'x'));
      await expectError(c, { message: `invalid destination "${destination}"`, receiptId: 'd' });
    });
  }

  it('refuses SUBSCRIBE to an invalid destination (S36)', async () => {
    const c = await h.client(V12);
    c.send(stompFrame('SUBSCRIBE', { destination: '/amq/queue/x', id: '1', receipt: 's' }));
    await expectError(c, { message: 'invalid destination "/amq/queue/x"', receiptId: 's' });
  });

  const parseErrors: ReadonlyArray<readonly [string, string, string]> = [
    ['a header line without a colon', 'SEND\ndestination:/queue/x\nnocolon\n\n\0', 'header line without a colon'],
    ['a header with an empty name', 'SEND\n:v\n\n\0', 'header with an empty name'],
    [
      'a content-length that is not a number',
      'SEND\ndestination:/queue/x\ncontent-length:abc\n\nabc\0',
      'content-length "abc" is not a non-negative integer',
    ],
    [
      'a negative content-length',
      'SEND\ndestination:/queue/x\ncontent-length:-1\n\n\0',
      'content-length "-1" is not a non-negative integer',
    ],
    [
      'a body longer than its content-length',
      'SEND\ndestination:/queue/x\ncontent-length:2\n\nabc\0',
      'frame body is longer than its content-length header',
    ],
  ];
  for (const [label, bytes, message] of parseErrors) {
    it(`refuses ${label} with ERROR, then closes`, async () => {
      const c = await h.client(V12);
      c.send(bytes);
      await expectError(c, { message, body: PARSE(message) });
    });
  }

  it('refuses a header that is not UTF-8 (S3)', async () => {
    const c = await h.client(V12);
    c.send(Buffer.concat([Buffer.from('SEND\ndestination:/queue/x\nx:'), Buffer.from([0xc3, 0x28]), Buffer.from('\n\n\0')]));
    await expectError(c, { message: 'header is not valid UTF-8', body: PARSE('header is not valid UTF-8') });
  });

  it('refuses a command that is not UTF-8', async () => {
    const c = await h.client(V12);
    c.send(Buffer.from([0xff, 0x0a, 0x0a, 0x00]));
    await expectError(c, { message: 'command is not valid UTF-8', body: PARSE('command is not valid UTF-8') });
  });
});
