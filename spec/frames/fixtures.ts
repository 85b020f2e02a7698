/**
 * Byte fixtures for the frame parser and the harness that runs them.
 *
 * Every fixture is parsed whole, split in two at every byte offset, and fed one byte at a time; all of those must
 * report the same frames, heart-beats and error (the `expect` list). A fixture whose list ends in an error must also
 * leave the parser stopped and deaf to anything pushed afterwards.
 *
 * In the fixture strings, `\n` is LF, `\r` CR, `\0` the NUL that ends a frame, and `\\` ONE backslash on the wire.
 */
import {
  FRAME_ERRORS,
  FrameParser,
  type FrameError,
  type FrameErrorCode,
  type FrameLimits,
  type StompVersion,
} from '../../frames/index.js';

// ---------------------------------------------------------------------------------------------------------------
// What a parse reports, as plain data that chai can compare and print.

export type ParseEvent =
  | { readonly kind: 'frame'; readonly command: string; readonly headers: ReadonlyArray<readonly [string, string]>; readonly body: Buffer }
  | { readonly kind: 'heartbeat' }
  | { readonly kind: 'error'; readonly code: FrameErrorCode; readonly command: string | undefined; readonly message: string };

export const ev = {
  frame(command: string, headers: ReadonlyArray<readonly [string, string]> = [], body: string | Buffer = ''): ParseEvent {
    return { kind: 'frame', command, headers, body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body };
  },
  heartbeat: { kind: 'heartbeat' } as ParseEvent,
  error(code: FrameErrorCode, message: string, command?: string): ParseEvent {
    return { kind: 'error', code, command, message };
  },
} as const;

export interface ParseSetup {
  readonly version?: StompVersion;
  readonly limits?: FrameLimits;
}

export interface ParseRun {
  readonly events: ParseEvent[];
  readonly parser: FrameParser;
}

/** A parser whose sink records everything it reports, in order. */
export function recordingParser(setup: ParseSetup = {}): ParseRun {
  const events: ParseEvent[] = [];
  const parser = new FrameParser(
    {
      frame: (f) => events.push({ kind: 'frame', command: f.command, headers: [...f.headers], body: Buffer.from(f.body) }),
      heartbeat: () => events.push(ev.heartbeat),
      error: (e: FrameError) => events.push({ kind: 'error', code: e.code, command: e.command, message: e.message }),
    },
    setup.limits,
  );
  if (setup.version !== undefined) parser.version = setup.version;
  return { events, parser };
}

export function parseChunks(chunks: Iterable<Buffer>, setup: ParseSetup = {}): ParseRun {
  const run = recordingParser(setup);
  for (const chunk of chunks) run.parser.push(chunk);
  return run;
}

export interface Chunking {
  readonly label: string;
  readonly chunks: Buffer[];
}

/** Whole; in two pieces at every offset from 0 to length (so empty chunks too); and one byte at a time. */
export function chunkings(bytes: Buffer): Chunking[] {
  const out: Chunking[] = [{ label: 'whole', chunks: [bytes] }];
  for (let at = 0; at <= bytes.length; at++) {
    out.push({ label: `split at ${at}`, chunks: [bytes.subarray(0, at), bytes.subarray(at)] });
  }
  const single: Buffer[] = [];
  for (let at = 0; at < bytes.length; at++) single.push(bytes.subarray(at, at + 1));
  out.push({ label: 'one byte at a time', chunks: single });
  return out;
}

/** Splits `bytes` at the given offsets (any order, duplicates and out-of-range values allowed). */
export function splitAt(bytes: Buffer, offsets: readonly number[]): Buffer[] {
  const cuts = [...new Set(offsets.map((o) => Math.min(Math.max(o, 0), bytes.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

/** Concatenates strings (UTF-8), raw byte lists and Buffers into one fixture. */
export function bytes(...parts: ReadonlyArray<string | readonly number[] | Buffer>): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

export interface Fixture extends ParseSetup {
  /** The behaviour, as the `it()` title. */
  readonly name: string;
  readonly bytes: Buffer;
  readonly expect: readonly ParseEvent[];
}

/** Small limits so every limit can be crossed by a readable fixture. */
export const SMALL_LIMITS: FrameLimits = Object.freeze({
  maxFrameBytes: 64,
  maxBodyBytes: 16,
  maxHeaders: 3,
  maxHeaderLineBytes: 20,
});

const DEST: readonly [string, string] = ['destination', '/queue/a'];

/** Frame boundaries, EOLs and bodies (STOMP 1.2 §STOMP Frames, §Header content-length). */
export const FRAMING_FIXTURES: readonly Fixture[] = [
  {
    // The plain case: LF line ends, body ended by NUL.
    name: 'reads a frame with LF line ends',
    bytes: bytes('SEND\ndestination:/queue/a\n\nhello\0'),
    expect: [ev.frame('SEND', [DEST], 'hello')],
  },
  {
    // S1: EOL = [CR] LF; the CR belongs to the EOL, not to the command, header or blank line.
    name: 'reads a frame with CRLF line ends',
    bytes: bytes('SEND\r\ndestination:/queue/a\r\n\r\nhello\0'),
    expect: [ev.frame('SEND', [DEST], 'hello')],
  },
  {
    // LF and CRLF lines mixed in one frame.
    name: 'reads a frame mixing LF and CRLF line ends',
    bytes: bytes('SEND\r\ndestination:/queue/a\nx:1\r\n\nhello\0'),
    expect: [ev.frame('SEND', [DEST, ['x', '1']], 'hello')],
  },
  {
    // Deliberate deviation documented in parser.ts: CRLF is accepted from 1.0 peers too.
    name: 'accepts CRLF line ends in 1.0 as well',
    version: '1.0',
    bytes: bytes('SEND\r\ndestination:/queue/a\r\n\r\nhi\0'),
    expect: [ev.frame('SEND', [DEST], 'hi')],
  },
  {
    // Several frames back to back in one chunk, each reported in order.
    name: 'reads many frames from one chunk in order',
    bytes: bytes('SUBSCRIBE\nid:0\ndestination:/queue/a\n\n\0SEND\ndestination:/queue/a\n\none\0DISCONNECT\nreceipt:77\n\n\0'),
    expect: [ev.frame('SUBSCRIBE', [['id', '0'], DEST]), ev.frame('SEND', [DEST], 'one'), ev.frame('DISCONNECT', [['receipt', '77']])],
  },
  {
    // S2 and the parser's documented choice: every EOL outside a frame (before, between, after) is one heart-beat.
    name: 'reports EOLs outside frames as heart-beats, one per EOL',
    bytes: bytes('\nSEND\n\na\0\n\r\n\nSEND\n\nb\0\r\n'),
    expect: [ev.heartbeat, ev.frame('SEND', [], 'a'), ev.heartbeat, ev.heartbeat, ev.heartbeat, ev.frame('SEND', [], 'b'), ev.heartbeat],
  },
  {
    // A stream of nothing but heart-beats never produces a frame.
    name: 'reports a stream of bare EOLs as heart-beats only',
    bytes: bytes('\n\r\n\n'),
    expect: [ev.heartbeat, ev.heartbeat, ev.heartbeat],
  },
  {
    // S9: with content-length, exactly that many octets are read, NULs included; then the NUL ends the frame.
    name: 'reads a content-length body that contains NULs',
    bytes: bytes('SEND\ncontent-length:5\n\na\0b\0c\0'),
    expect: [ev.frame('SEND', [['content-length', '5']], Buffer.from([0x61, 0, 0x62, 0, 0x63]))],
  },
  {
    // A body that is nothing but NULs, sized by content-length.
    name: 'reads a content-length body made only of NULs',
    bytes: bytes('MESSAGE\ncontent-length:3\n\n\0\0\0\0'),
    expect: [ev.frame('MESSAGE', [['content-length', '3']], Buffer.from([0, 0, 0]))],
  },
  {
    // Without content-length the first NUL ends the body; what follows starts the next frame.
    name: 'ends a body without content-length at the first NUL',
    bytes: bytes('MESSAGE\n\nab\0cd\n\n\0'),
    expect: [ev.frame('MESSAGE', [], 'ab'), ev.frame('cd', [], '')],
  },
  {
    // A frame with headers but no body: the blank line is followed directly by NUL.
    name: 'reads an empty body',
    bytes: bytes('DISCONNECT\nreceipt:1\n\n\0'),
    expect: [ev.frame('DISCONNECT', [['receipt', '1']])],
  },
  {
    // No headers and no body: the smallest frame there is.
    name: 'reads a frame with no headers and no body',
    bytes: bytes('DISCONNECT\n\n\0'),
    expect: [ev.frame('DISCONNECT')],
  },
  {
    // content-length:0 goes straight to expecting the NUL.
    name: 'reads a zero content-length as an empty body',
    bytes: bytes('SEND\ncontent-length:0\n\n\0SEND\n\n\0'),
    expect: [ev.frame('SEND', [['content-length', '0']]), ev.frame('SEND')],
  },
  {
    // content-length is a decimal octet count; leading zeros do not make it octal or invalid.
    name: 'reads a content-length with leading zeros as decimal',
    bytes: bytes('SEND\ncontent-length:010\n\n0123456789\0'),
    expect: [ev.frame('SEND', [['content-length', '010']], '0123456789')],
  },
  {
    // The octets after a content-length body may be EOLs, which are heart-beats, and then more frames.
    name: 'reads EOLs and a next frame after a content-length body',
    bytes: bytes('SEND\ncontent-length:2\n\n\n\n\0\r\nACK\nid:1\n\n\0'),
    expect: [ev.frame('SEND', [['content-length', '2']], '\n\n'), ev.heartbeat, ev.frame('ACK', [['id', '1']])],
  },
];

/** Header lines (STOMP 1.2 §Augmented BNF, §Repeated Header Entries, §Value Encoding). */
export const HEADER_FIXTURES: readonly Fixture[] = [
  {
    // header-value is everything after the FIRST colon, further colons included.
    name: 'keeps colons after the first one in the value',
    bytes: bytes('SEND\nurl:http://host:8080/a\ntime:12:30:00\n\n\0'),
    expect: [
      ev.frame('SEND', [
        ['url', 'http://host:8080/a'],
        ['time', '12:30:00'],
      ]),
    ],
  },
  {
    // S14: the first of repeated headers wins; the later one does not move it or replace it.
    name: 'keeps the first value of a repeated header',
    bytes: bytes('SEND\nfoo:first\nbar:1\nfoo:second\n\n\0'),
    expect: [
      ev.frame('SEND', [
        ['foo', 'first'],
        ['bar', '1'],
      ]),
    ],
  },
  {
    // First wins for content-length too: the body is read with the first length.
    name: 'uses the first of repeated content-length headers',
    bytes: bytes('SEND\ncontent-length:2\ncontent-length:5\n\nab\0'),
    expect: [ev.frame('SEND', [['content-length', '2']], 'ab')],
  },
  {
    // S7: names and values are never trimmed (1.0 examples write `ack: client`; the space stays).
    name: 'never trims spaces around names or values',
    bytes: bytes('SEND\n key : value \nack: client\n\n\0'),
    expect: [
      ev.frame('SEND', [
        [' key ', ' value '],
        ['ack', ' client'],
      ]),
    ],
  },
  {
    name: 'keeps spaces in 1.0 headers too',
    version: '1.0',
    bytes: bytes('SUBSCRIBE\ndestination: /queue/a\nack: client\n\n\0'),
    expect: [
      ev.frame('SUBSCRIBE', [
        ['destination', ' /queue/a'],
        ['ack', ' client'],
      ]),
    ],
  },
  {
    // An empty value is a value; the header is present.
    name: 'reads an empty header value',
    bytes: bytes('SEND\nfoo:\n\n\0'),
    expect: [ev.frame('SEND', [['foo', '']])],
  },
  {
    // S3: names are case-sensitive; integer-like names keep arrival order (the reason Headers is a Map).
    name: 'keeps header names case-sensitive and in arrival order',
    bytes: bytes('SEND\nDestination:/A\ndestination:/a\n2:two\n1:one\n\n\0'),
    expect: [
      ev.frame('SEND', [
        ['Destination', '/A'],
        ['destination', '/a'],
        ['2', 'two'],
        ['1', 'one'],
      ]),
    ],
  },
  {
    // S3: UTF-8 in command-adjacent headers and the body; two-, three- and four-byte sequences get split by the chunkings.
    name: 'decodes multi-byte UTF-8 in header names, values and the body',
    bytes: bytes('SEND\ndestination:/queue/café\nπ:日本語 🎉\n\nhéllo wörld 🎉\0'),
    expect: [
      ev.frame(
        'SEND',
        [
          ['destination', '/queue/café'],
          ['π', '日本語 🎉'],
        ],
        'héllo wörld 🎉',
      ),
    ],
  },
  {
    // content-length counts octets, not characters: "é🎉" is 6 bytes.
    name: 'counts content-length in bytes for a UTF-8 body',
    bytes: bytes('SEND\ncontent-length:6\n\né🎉\0'),
    expect: [ev.frame('SEND', [['content-length', '6']], 'é🎉')],
  },
];

/** Header escaping by version (STOMP 1.2 §Value Encoding; V1–V3). */
export const ESCAPE_FIXTURES: readonly Fixture[] = [
  {
    // 1.2: \r \n \c \\ in both names and values.
    name: '1.2 decodes \\r, \\n, \\c and \\\\ in names and values',
    version: '1.2',
    bytes: bytes('SEND\na\\cb:x\\ny\\\\z\\rw\n\n\0'),
    expect: [ev.frame('SEND', [['a:b', 'x\ny\\z\rw']])],
  },
  {
    // Single pass: an escaped backslash followed by "n" is a backslash and an "n", never a newline.
    name: '1.2 decodes in one pass, so \\\\n is a backslash then n',
    version: '1.2',
    bytes: bytes('SEND\nk:\\\\n\\\\c\n\n\0'),
    expect: [ev.frame('SEND', [['k', '\\n\\c']])],
  },
  {
    // The parser's version defaults to 1.2 until the session negotiates one.
    name: 'applies 1.2 escaping before a version is set',
    bytes: bytes('SEND\nk:a\\rb\n\n\0'),
    expect: [ev.frame('SEND', [['k', 'a\rb']])],
  },
  {
    // 1.1: \n \c \\ exist.
    name: '1.1 decodes \\n, \\c and \\\\',
    version: '1.1',
    bytes: bytes('SEND\na\\cb:x\\ny\\\\z\n\n\0'),
    expect: [ev.frame('SEND', [['a:b', 'x\ny\\z']])],
  },
  {
    // V2: \r is not a 1.1 escape, so it is an undefined one and fatal.
    name: '1.1 rejects \\r as an undefined escape',
    version: '1.1',
    bytes: bytes('SEND\nk:a\\rb\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_ESCAPE, 'undefined escape sequence in header "k"', 'SEND')],
  },
  {
    // S5: \t is undefined in every escaping version.
    name: '1.2 rejects an undefined escape such as \\t',
    version: '1.2',
    bytes: bytes('SEND\nk:a\\tb\n\n\0SEND\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_ESCAPE, 'undefined escape sequence in header "k"', 'SEND')],
  },
  {
    name: '1.1 rejects an undefined escape such as \\t',
    version: '1.1',
    bytes: bytes('SEND\nk:a\\tb\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_ESCAPE, 'undefined escape sequence in header "k"', 'SEND')],
  },
  {
    // A backslash with nothing after it is not an escape at all.
    name: '1.2 rejects a value ending in a lone backslash',
    version: '1.2',
    bytes: bytes('SEND\nk:abc\\\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_ESCAPE, 'undefined escape sequence in header "k"', 'SEND')],
  },
  {
    // Names are unescaped too, so a bad escape in a name is just as fatal.
    name: '1.2 rejects an undefined escape in a header name',
    version: '1.2',
    bytes: bytes('SEND\nk\\x:v\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_ESCAPE, 'undefined escape sequence in header "k\\x"', 'SEND')],
  },
  {
    // V1: 1.0 has no escapes; backslashes are ordinary octets, even before t or r.
    name: '1.0 takes backslashes literally',
    version: '1.0',
    bytes: bytes('SEND\nk\\c:a\\nb\\tc\\rd\\\n\n\0'),
    expect: [ev.frame('SEND', [['k\\c', 'a\\nb\\tc\\rd\\']])],
  },
  {
    // S6: CONNECT is never unescaped, so a password with a backslash arrives intact, whatever the version.
    name: 'never unescapes CONNECT headers (passcode a\\b)',
    version: '1.2',
    bytes: bytes('CONNECT\naccept-version:1.0,1.1,1.2\nhost:/\nlogin:guest\npasscode:a\\b\n\n\0'),
    expect: [
      ev.frame('CONNECT', [
        ['accept-version', '1.0,1.1,1.2'],
        ['host', '/'],
        ['login', 'guest'],
        ['passcode', 'a\\b'],
      ]),
    ],
  },
  {
    // S17: STOMP is CONNECT by another name, so it is not unescaped either.
    name: 'never unescapes STOMP headers',
    version: '1.1',
    bytes: bytes('STOMP\naccept-version:1.1\nhost:/\npasscode:\\t\\r\\\n\n\0'),
    expect: [
      ev.frame('STOMP', [
        ['accept-version', '1.1'],
        ['host', '/'],
        ['passcode', '\\t\\r\\'],
      ]),
    ],
  },
  {
    // The same holds for CONNECTED, which a client-side parser reads.
    name: 'never unescapes CONNECTED headers',
    version: '1.2',
    bytes: bytes('CONNECTED\nversion:1.2\nserver:a\\b/1.0\n\n\0'),
    expect: [
      ev.frame('CONNECTED', [
        ['version', '1.2'],
        ['server', 'a\\b/1.0'],
      ]),
    ],
  },
  {
    // The exemption is for CONNECT only: the next frame in the same chunk is unescaped again.
    name: 'unescapes the frame after a CONNECT again',
    version: '1.2',
    bytes: bytes('CONNECT\npasscode:a\\b\n\n\0SEND\nk:a\\cb\n\n\0'),
    expect: [ev.frame('CONNECT', [['passcode', 'a\\b']]), ev.frame('SEND', [['k', 'a:b']])],
  },
];

const A20 = 'a'.repeat(20);

/** Every error in FRAME_ERRORS, plus the boundaries just inside each limit. */
export const ERROR_FIXTURES: readonly Fixture[] = [
  // --- limits (SMALL_LIMITS: frame 64, body 16, 3 headers, line 20) ---
  {
    // A declared length over the body limit fails at the blank line, before any body byte is kept.
    name: 'rejects a content-length over maxBodyBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\ncontent-length:17\n\n', 'x'.repeat(17), '\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BODY_TOO_LARGE, 'frame body exceeds 16 bytes', 'SEND')],
  },
  {
    name: 'accepts a content-length body of exactly maxBodyBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\ncontent-length:16\n\n', 'x'.repeat(16), '\0'),
    expect: [ev.frame('SEND', [['content-length', '16']], 'x'.repeat(16))],
  },
  {
    // Without content-length the body is counted as it arrives.
    name: 'rejects a NUL-terminated body over maxBodyBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n\n', 'x'.repeat(17), '\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BODY_TOO_LARGE, 'frame body exceeds 16 bytes', 'SEND')],
  },
  {
    // A body that never ends must not be buffered forever.
    name: 'rejects an unterminated body once it passes maxBodyBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n\n', 'x'.repeat(40)),
    expect: [ev.error(FRAME_ERRORS.ERR_BODY_TOO_LARGE, 'frame body exceeds 16 bytes', 'SEND')],
  },
  {
    name: 'accepts a NUL-terminated body of exactly maxBodyBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n\n', 'x'.repeat(16), '\0'),
    expect: [ev.frame('SEND', [], 'x'.repeat(16))],
  },
  {
    // 5 (command) + 3 x 21 (header lines) = 68 bytes > 64 before the headers even end.
    name: 'rejects headers that push the frame over maxFrameBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n', `a:${'1'.repeat(18)}\n`, `b:${'2'.repeat(18)}\n`, `c:${'3'.repeat(18)}\n`, '\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_FRAME_TOO_LARGE, 'frame exceeds 64 bytes', 'SEND')],
  },
  {
    // 5 + 21 + 21 + 11 + 1 (blank line) = 59 header bytes; a 6-byte body makes 65 > 64, though 6 <= maxBodyBytes.
    name: 'rejects a NUL-terminated body that pushes the frame over maxFrameBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n', `a:${'1'.repeat(18)}\n`, `b:${'2'.repeat(18)}\n`, `c:${'3'.repeat(8)}\n`, '\n', 'x'.repeat(6), '\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_FRAME_TOO_LARGE, 'frame exceeds 64 bytes', 'SEND')],
  },
  {
    // The same 59 header bytes with a 5-byte body: exactly 64, the NUL not counted.
    name: 'accepts a NUL-terminated frame of exactly maxFrameBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n', `a:${'1'.repeat(18)}\n`, `b:${'2'.repeat(18)}\n`, `c:${'3'.repeat(8)}\n`, '\n', 'x'.repeat(5), '\0'),
    expect: [
      ev.frame(
        'SEND',
        [
          ['a', '1'.repeat(18)],
          ['b', '2'.repeat(18)],
          ['c', '3'.repeat(8)],
        ],
        'x'.repeat(5),
      ),
    ],
  },
  {
    // Checked up front: 5 + 21 + 11 + 18 ("content-length:10\n") + 1 = 56 header bytes, and 56 + 10 = 66 > 64.
    name: 'rejects a content-length that would push the frame over maxFrameBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n', `a:${'1'.repeat(18)}\n`, `b:${'2'.repeat(8)}\n`, 'content-length:10\n', '\n', 'x'.repeat(10), '\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_FRAME_TOO_LARGE, 'frame exceeds 64 bytes', 'SEND')],
  },
  {
    // 5 + 21 + 11 + 17 ("content-length:9\n") + 1 + 9 = 64: exactly the limit, the NUL not counted (as without content-length).
    name: 'accepts a content-length frame of exactly maxFrameBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n', `a:${'1'.repeat(18)}\n`, `b:${'2'.repeat(8)}\n`, 'content-length:9\n', '\n', 'x'.repeat(9), '\0'),
    expect: [
      ev.frame(
        'SEND',
        [
          ['a', '1'.repeat(18)],
          ['b', '2'.repeat(8)],
          ['content-length', '9'],
        ],
        'x'.repeat(9),
      ),
    ],
  },
  {
    name: 'rejects more than maxHeaders headers',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\na:1\nb:2\nc:3\nd:4\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_TOO_MANY_HEADERS, 'frame has more than 3 headers', 'SEND')],
  },
  {
    // Repeated headers still count as lines: the limit is on what the peer sends, not on what we keep.
    name: 'counts repeated headers against maxHeaders',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\na:1\na:2\na:3\na:4\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_TOO_MANY_HEADERS, 'frame has more than 3 headers', 'SEND')],
  },
  {
    name: 'accepts exactly maxHeaders headers',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\na:1\nb:2\nc:3\n\n\0'),
    expect: [
      ev.frame('SEND', [
        ['a', '1'],
        ['b', '2'],
        ['c', '3'],
      ]),
    ],
  },
  {
    // 21 bytes of "k:" + 19 > 20.
    name: 'rejects a header line over maxHeaderLineBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\nk:', 'v'.repeat(19), '\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_HEADER_TOO_LONG, 'header line exceeds 20 bytes', 'SEND')],
  },
  {
    // A header line that never ends must not be buffered forever.
    name: 'rejects an unterminated header line once it passes maxHeaderLineBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\nk:', 'v'.repeat(30)),
    expect: [ev.error(FRAME_ERRORS.ERR_HEADER_TOO_LONG, 'header line exceeds 20 bytes', 'SEND')],
  },
  {
    // The CR of a CRLF is part of the EOL and does not count against the line.
    name: 'accepts a header line of exactly maxHeaderLineBytes, with LF or CRLF',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\nk:', 'v'.repeat(18), '\nj:', 'w'.repeat(18), '\r\n\n\0'),
    expect: [
      ev.frame('SEND', [
        ['k', 'v'.repeat(18)],
        ['j', 'w'.repeat(18)],
      ]),
    ],
  },
  {
    // The command line has the same limit; a command that long is no command.
    name: 'rejects a command line over maxHeaderLineBytes',
    limits: SMALL_LIMITS,
    bytes: bytes('A'.repeat(21), '\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_COMMAND, 'command line exceeds 20 bytes')],
  },
  {
    name: 'accepts a command line of exactly maxHeaderLineBytes',
    limits: SMALL_LIMITS,
    bytes: bytes(A20, '\r\n\r\n\0'),
    expect: [ev.frame(A20)],
  },
  // --- two limits crossed by the same bytes: the one crossed first, byte by byte, is reported in every chunking ---
  {
    // 5 + 21 + 21 = 47 bytes before the third header; its 18th byte is the frame's 65th, its 22nd would be past the
    // line limit. A parser that checked the line first when it saw the whole line would disagree with one fed bytewise.
    name: 'reports the frame limit when a long header line crosses it before the line limit',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n', `a:${'1'.repeat(18)}\n`, `b:${'2'.repeat(18)}\n`, `c:${'3'.repeat(28)}\n`, '\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_FRAME_TOO_LARGE, 'frame exceeds 64 bytes', 'SEND')],
  },
  {
    // 5 + 21 = 26 bytes before a 45-byte header: the line limit is crossed at its 22nd byte, the frame limit at its 39th.
    name: 'reports the line limit when a long header line crosses it before the frame limit',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n', `a:${'1'.repeat(18)}\n`, `c:${'3'.repeat(43)}\n`, '\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_HEADER_TOO_LONG, 'header line exceeds 20 bytes', 'SEND')],
  },
  {
    // 59 header bytes, then a 20-byte body without content-length: the frame limit falls at body byte 6, the body
    // limit at byte 17.
    name: 'reports the frame limit when a body crosses it before the body limit',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n', `a:${'1'.repeat(18)}\n`, `b:${'2'.repeat(18)}\n`, `c:${'3'.repeat(8)}\n`, '\n', 'x'.repeat(20), '\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_FRAME_TOO_LARGE, 'frame exceeds 64 bytes', 'SEND')],
  },
  {
    // 5 + 1 (blank line) = 6 header bytes, then 20 body bytes: the body limit falls at body byte 17, the frame limit at 59.
    name: 'reports the body limit when a body crosses it before the frame limit',
    limits: SMALL_LIMITS,
    bytes: bytes('SEND\n\n', 'x'.repeat(70), '\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BODY_TOO_LARGE, 'frame body exceeds 16 bytes', 'SEND')],
  },
  {
    // With a frame limit below the line limit, a 15-byte command crosses the frame limit at its 11th byte, before
    // the command is known; no chunking may report the command.
    name: 'rejects a command line over maxFrameBytes before knowing the command',
    limits: { ...SMALL_LIMITS, maxFrameBytes: 10 },
    bytes: bytes('A'.repeat(15), '\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_FRAME_TOO_LARGE, 'frame exceeds 10 bytes')],
  },
  // --- malformed headers ---
  {
    name: 'rejects a header line without a colon',
    bytes: bytes('SEND\ndestination:/queue/a\nnocolon\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_HEADER, 'header line without a colon', 'SEND')],
  },
  {
    name: 'rejects a header with an empty name',
    bytes: bytes('SEND\n:value\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_HEADER, 'header with an empty name', 'SEND')],
  },
  // --- content-length ---
  ...['-1', '1.5', ' 3', '3 ', 'abc', '', '0x10', '+3', '1e3'].map((value): Fixture => ({
    name: `rejects content-length ${JSON.stringify(value)}`,
    bytes: bytes(`SEND\ncontent-length:${value}\n\nabc\0`),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_CONTENT_LENGTH, `content-length "${value}" is not a non-negative integer`, 'SEND')],
  })),
  {
    // S9: the octet after content-length bytes must be the NUL.
    name: 'rejects a body longer than its content-length (no NUL where expected)',
    bytes: bytes('SEND\ncontent-length:2\n\nabc\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_MISSING_NUL, 'frame body is longer than its content-length header', 'SEND')],
  },
  {
    name: 'rejects a non-NUL octet after a zero content-length',
    bytes: bytes('SEND\ncontent-length:0\n\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_MISSING_NUL, 'frame body is longer than its content-length header', 'SEND')],
  },
  // --- UTF-8 ---
  {
    // C3 28 is a two-byte lead followed by a non-continuation byte.
    name: 'rejects invalid UTF-8 in a header value',
    bytes: bytes('SEND\nfoo:', [0xc3, 0x28], '\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_UTF8, 'header is not valid UTF-8', 'SEND')],
  },
  {
    // A lone continuation byte in a name.
    name: 'rejects invalid UTF-8 in a header name',
    bytes: bytes('SEND\n', [0x80], 'x:1\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_UTF8, 'header is not valid UTF-8', 'SEND')],
  },
  {
    // Overlong encoding of "/" (C0 AF) is not UTF-8 either.
    name: 'rejects an overlong UTF-8 sequence in a header',
    bytes: bytes('SEND\ndestination:', [0xc0, 0xaf], '\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_UTF8, 'header is not valid UTF-8', 'SEND')],
  },
  {
    name: 'rejects invalid UTF-8 in the command',
    bytes: bytes([0xff], 'SEND\n\n\0'),
    expect: [ev.error(FRAME_ERRORS.ERR_BAD_UTF8, 'command is not valid UTF-8')],
  },
  {
    // Bodies are binary: invalid UTF-8 there is fine.
    name: 'accepts a body that is not UTF-8',
    bytes: bytes('SEND\ncontent-length:2\n\n', [0xff, 0xfe], '\0'),
    expect: [ev.frame('SEND', [['content-length', '2']], Buffer.from([0xff, 0xfe]))],
  },
  // --- one error, then silence ---
  {
    // Frames before the error are reported; nothing after it, not even a valid frame or a heart-beat.
    name: 'reports frames before an error and nothing after it',
    bytes: bytes('SEND\n\nok\0\nSEND\nnocolon\n\n\0\nSEND\n\nlater\0\n'),
    expect: [ev.frame('SEND', [], 'ok'), ev.heartbeat, ev.error(FRAME_ERRORS.ERR_BAD_HEADER, 'header line without a colon', 'SEND')],
  },
];

export const ALL_FIXTURES: readonly Fixture[] = [...FRAMING_FIXTURES, ...HEADER_FIXTURES, ...ESCAPE_FIXTURES, ...ERROR_FIXTURES];
