import { expect } from 'chai';
import {
  EMPTY_BODY,
  HEARTBEAT,
  MessageTemplate,
  VERSIONS,
  ackLine,
  encodeFrame,
  messagePrefix,
  type StompVersion,
} from '../../frames/index.js';
import { ev, parseChunks, type ParseEvent } from './fixtures.js';

/** Parses bytes in one piece with the given version; the encoder's output must be exactly one frame. */
function parseOne(bytes: Buffer, version: StompVersion): ParseEvent {
  const { events } = parseChunks([bytes], { version });
  expect(events).to.have.length(1);
  return events[0] as ParseEvent;
}

describe('frames › encoder › encodeFrame', () => {
  it('writes the exact bytes of a SEND with a body', () => {
    const out = encodeFrame('SEND', [['destination', '/queue/a']], Buffer.from('hi'), '1.2');
    expect(out.toString('latin1')).to.equal('SEND\ndestination:/queue/a\ncontent-length:2\n\nhi\0');
  });

  it('writes no content-length on a frame without a body (other than MESSAGE and ERROR)', () => {
    expect(
      encodeFrame('SUBSCRIBE', [
        ['id', '0'],
        ['destination', '/queue/a'],
      ]).toString(),
    ).to.equal('SUBSCRIBE\nid:0\ndestination:/queue/a\n\n\0');
    expect(encodeFrame('RECEIPT', [['receipt-id', '7']], EMPTY_BODY, '1.0').toString()).to.equal('RECEIPT\nreceipt-id:7\n\n\0');
  });

  it('always writes content-length on MESSAGE and ERROR, even with an empty body', () => {
    for (const version of VERSIONS) {
      expect(encodeFrame('MESSAGE', [['destination', '/q']], EMPTY_BODY, version).toString()).to.equal(
        'MESSAGE\ndestination:/q\ncontent-length:0\n\n\0',
      );
      expect(encodeFrame('ERROR', [['message', 'bad']], EMPTY_BODY, version).toString()).to.equal(
        'ERROR\nmessage:bad\ncontent-length:0\n\n\0',
      );
    }
  });

  it('replaces a caller-supplied content-length with the real one', () => {
    const out = encodeFrame(
      'MESSAGE',
      [
        ['content-length', '99'],
        ['destination', '/q'],
      ],
      Buffer.from('abc'),
    );
    expect(out.toString()).to.equal('MESSAGE\ndestination:/q\ncontent-length:3\n\nabc\0');
    const send = encodeFrame(
      'SEND',
      [
        ['content-length', '1'],
        ['destination', '/q'],
      ],
      Buffer.from('abcd'),
    );
    expect(send.toString()).to.equal('SEND\ndestination:/q\ncontent-length:4\n\nabcd\0');
  });

  it('corrects a caller-supplied content-length on a frame without a body', () => {
    // A stale "content-length:5" on an empty frame would make the peer swallow the next 5 bytes of the stream.
    const out = encodeFrame(
      'SEND',
      [
        ['destination', '/q'],
        ['content-length', '5'],
      ],
      EMPTY_BODY,
    );
    expect(out.toString()).to.equal('SEND\ndestination:/q\ncontent-length:0\n\n\0');
    const stream = Buffer.concat([out, encodeFrame('DISCONNECT', [])]);
    const { events } = parseChunks([stream]);
    expect(events).to.deep.equal([
      ev.frame('SEND', [
        ['destination', '/q'],
        ['content-length', '0'],
      ]),
      ev.frame('DISCONNECT'),
    ]);
  });

  it('keeps header order and repeated headers as given', () => {
    const out = encodeFrame('SEND', [
      ['b', '1'],
      ['a', '2'],
      ['b', '3'],
    ]);
    expect(out.toString()).to.equal('SEND\nb:1\na:2\nb:3\n\n\0');
  });

  it('writes a body containing NULs after a content-length', () => {
    const body = Buffer.from([0, 1, 0, 2]);
    const out = encodeFrame('SEND', [], body);
    expect(out).to.deep.equal(Buffer.concat([Buffer.from('SEND\ncontent-length:4\n\n'), body, Buffer.from([0])]));
  });

  it('writes UTF-8 headers and counts content-length in bytes', () => {
    const out = encodeFrame('SEND', [['destination', '/queue/café']], Buffer.from('🎉'));
    expect(out.toString('utf8')).to.equal('SEND\ndestination:/queue/café\ncontent-length:4\n\n🎉\0');
  });

  it('escapes names and values per version', () => {
    const headers: Array<[string, string]> = [['a:b', 'x\ny\\z\rw']];
    expect(encodeFrame('SEND', headers, EMPTY_BODY, '1.2').toString()).to.equal('SEND\na\\cb:x\\ny\\\\z\\rw\n\n\0');
    expect(encodeFrame('SEND', headers, EMPTY_BODY, '1.1').toString()).to.equal('SEND\na\\cb:x\\ny\\\\z\rw\n\n\0');
    expect(encodeFrame('SEND', [['k', 'a\\b']], EMPTY_BODY, '1.0').toString()).to.equal('SEND\nk:a\\b\n\n\0');
  });

  it('defaults to 1.2 escaping', () => {
    expect(encodeFrame('SEND', [['k', '\r']]).toString()).to.equal('SEND\nk:\\r\n\n\0');
  });

  it('never escapes CONNECTED, CONNECT or STOMP headers', () => {
    for (const version of VERSIONS) {
      expect(
        encodeFrame(
          'CONNECTED',
          [
            ['version', '1.2'],
            ['server', 'stompede/0.1 a:b\\c'],
          ],
          EMPTY_BODY,
          version,
        ).toString(),
      ).to.equal('CONNECTED\nversion:1.2\nserver:stompede/0.1 a:b\\c\n\n\0');
      expect(encodeFrame('CONNECT', [['passcode', 'a\\b:c']], EMPTY_BODY, version).toString()).to.equal('CONNECT\npasscode:a\\b:c\n\n\0');
      expect(encodeFrame('STOMP', [['passcode', 'a\\b']], EMPTY_BODY, version).toString()).to.equal('STOMP\npasscode:a\\b\n\n\0');
    }
  });

  describe('round trips (encode, then parse with the same version)', () => {
    const body = Buffer.from([0x68, 0, 0xff, 0x0a, 0]);
    const cases: Record<StompVersion, Array<[string, string]>> = {
      '1.0': [
        ['destination', '/queue/é'],
        ['spaced', ' v '],
        ['url', 'http://h:1/'],
        ['back', 'a\\tb'],
      ],
      '1.1': [
        ['destination', '/queue/é'],
        ['a:b', 'x\ny\\z'],
        ['spaced', ' v '],
        ['url', 'http://h:1/'],
      ],
      '1.2': [
        ['destination', '/queue/é'],
        ['a:b', 'x\ny\\z\rw'],
        ['cr', '\r'],
        ['spaced', ' v '],
      ],
    };
    for (const version of VERSIONS) {
      it(`${version}: SEND, MESSAGE, ERROR and RECEIPT come back with the same command, headers and body`, () => {
        const headers = cases[version];
        for (const command of ['SEND', 'MESSAGE', 'ERROR']) {
          expect(parseOne(encodeFrame(command, headers, body, version), version)).to.deep.equal(
            ev.frame(command, [...headers, ['content-length', '5']], body),
          );
        }
        expect(parseOne(encodeFrame('RECEIPT', [['receipt-id', 'r:1']], EMPTY_BODY, version), version)).to.deep.equal(
          ev.frame('RECEIPT', [['receipt-id', 'r:1']]),
        );
      });

      it(`${version}: CONNECT comes back with backslashes intact`, () => {
        const headers: Array<[string, string]> = [
          ['accept-version', '1.0,1.1,1.2'],
          ['host', '/'],
          ['passcode', 'p\\a:ss'],
        ];
        expect(parseOne(encodeFrame('CONNECT', headers, EMPTY_BODY, version), version)).to.deep.equal(ev.frame('CONNECT', headers));
      });
    }
  });

  it('HEARTBEAT is a single LF', () => {
    expect([...HEARTBEAT]).to.deep.equal([0x0a]);
    const { events } = parseChunks([HEARTBEAT]);
    expect(events).to.deep.equal([ev.heartbeat]);
  });
});

describe('frames › encoder › MessageTemplate', () => {
  const userHeaders: Array<[string, string]> = [
    ['content-type', 'text/plain'],
    ['x-user', 'a:b\\c\nd'],
  ];

  function template(body: Buffer = Buffer.from('héllo')): MessageTemplate {
    return new MessageTemplate('/topic/news:é', 'node-1-a', userHeaders, body);
  }

  it('writes prefix, ack line and tail as the exact bytes of one MESSAGE', () => {
    const bytes = Buffer.concat([messagePrefix('sub-0', '1.2'), ackLine('42'), template().tail('1.2')]);
    expect(bytes.toString('utf8')).to.equal(
      'MESSAGE\nsubscription:sub-0\nack:42\ndestination:/topic/news\\cé\nmessage-id:node-1-a\n' +
        'content-type:text/plain\nx-user:a\\cb\\\\c\\nd\ncontent-length:6\n\nhéllo\0',
    );
  });

  for (const version of VERSIONS) {
    it(`${version}: prefix + ack line + tail parses back to the MESSAGE`, () => {
      const headers = version === '1.0' ? [['content-type', 'text/plain'] as [string, string]] : userHeaders;
      const destination = version === '1.0' ? '/topic/news' : '/topic/news:é\\';
      const t = new MessageTemplate(destination, 'node:1\\a', headers, Buffer.from('héllo'));
      const bytes = Buffer.concat([messagePrefix('sub:0', version), ackLine('42'), t.tail(version)]);
      expect(parseOne(bytes, version)).to.deep.equal(
        ev.frame(
          'MESSAGE',
          [
            ['subscription', 'sub:0'],
            ['ack', '42'],
            ['destination', destination],
            ['message-id', 'node:1\\a'],
            ...headers,
            ['content-length', '6'],
          ],
          'héllo',
        ),
      );
    });
  }

  it('parses back without an ack line (auto-ack subscriptions)', () => {
    const bytes = Buffer.concat([messagePrefix('7', '1.1'), template().tail('1.1')]);
    expect(parseOne(bytes, '1.1')).to.deep.equal(
      ev.frame(
        'MESSAGE',
        [['subscription', '7'], ['destination', '/topic/news:é'], ['message-id', 'node-1-a'], ...userHeaders, ['content-length', '6']],
        'héllo',
      ),
    );
  });

  it('carries a binary body with NULs, sized by content-length', () => {
    const body = Buffer.from([0, 0xff, 0, 0x0a]);
    const bytes = Buffer.concat([messagePrefix('s', '1.2'), template(body).tail('1.2')]);
    const { events } = parseChunks([bytes, bytes]);
    const expected = ev.frame(
      'MESSAGE',
      [['subscription', 's'], ['destination', '/topic/news:é'], ['message-id', 'node-1-a'], ...userHeaders, ['content-length', '4']],
      body,
    );
    expect(events).to.deep.equal([expected, expected]);
  });

  it('writes content-length:0 for an empty body', () => {
    const tail = new MessageTemplate('/q', 'm', [], EMPTY_BODY).tail('1.2');
    expect(tail.toString()).to.equal('destination:/q\nmessage-id:m\ncontent-length:0\n\n\0');
  });

  it('builds the tail once per version and then returns the same Buffer', () => {
    const t = template();
    const tails = VERSIONS.map((v) => t.tail(v));
    VERSIONS.forEach((v, i) => expect(t.tail(v)).to.equal(tails[i]));
    expect(new Set(tails).size).to.equal(3);
  });

  it('escapes the tail per version', () => {
    const t = new MessageTemplate('/q', 'm', [['k', 'a:b\r']], EMPTY_BODY);
    expect(t.tail('1.2').toString()).to.equal('destination:/q\nmessage-id:m\nk:a\\cb\\r\ncontent-length:0\n\n\0');
    expect(t.tail('1.1').toString()).to.equal('destination:/q\nmessage-id:m\nk:a\\cb\r\ncontent-length:0\n\n\0');
    expect(t.tail('1.0').toString()).to.equal('destination:/q\nmessage-id:m\nk:a:b \ncontent-length:0\n\n\0');
  });

  it('escapes the message-id like any other header value', () => {
    const t = new MessageTemplate('/q', 'id\\1:2', [], EMPTY_BODY);
    expect(t.tail('1.2').toString()).to.equal('destination:/q\nmessage-id:id\\\\1\\c2\ncontent-length:0\n\n\0');
  });

  it('escapes the subscription id in the prefix per version', () => {
    expect(messagePrefix('a:b', '1.2').toString()).to.equal('MESSAGE\nsubscription:a\\cb\n');
    expect(messagePrefix('a:b', '1.0').toString()).to.equal('MESSAGE\nsubscription:a:b\n');
  });

  it('writes the ack line as given', () => {
    expect(ackLine('node-1-7').toString()).to.equal('ack:node-1-7\n');
  });

  it('reports utf8Body true for a UTF-8 body, empty included', () => {
    expect(template(Buffer.from('héllo 🎉')).utf8Body).to.equal(true);
    expect(template(EMPTY_BODY).utf8Body).to.equal(true);
  });

  it('reports utf8Body false for a body that is not UTF-8', () => {
    expect(template(Buffer.from([0x68, 0xc3, 0x28])).utf8Body).to.equal(false);
    expect(template(Buffer.from([0xff])).utf8Body).to.equal(false);
  });

  it('keeps the fields it was given', () => {
    const body = Buffer.from('x');
    const t = new MessageTemplate('/q', 'm-1', userHeaders, body);
    expect(t.destination).to.equal('/q');
    expect(t.messageId).to.equal('m-1');
    expect(t.headers).to.equal(userHeaders);
    expect(t.body).to.equal(body);
  });
});
