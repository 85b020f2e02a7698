/**
 * Incremental STOMP frame parser over a byte stream.
 *
 * Grammar (STOMP 1.2 §Augmented BNF), as enforced here:
 *
 *   frame        = command EOL *( header EOL ) EOL *OCTET NULL *( EOL )
 *   command      = 1*<any OCTET except CR LF>         ; which commands exist is the session's business
 *   EOL          = [CR] LF
 *   header       = header-name ":" header-value
 *   header-name  = 1*<any OCTET except CR LF ":">
 *   header-value = *<any OCTET except CR LF>            ; everything after the FIRST colon, colons included
 *
 * Deviations and choices, each deliberate:
 * - CRLF is accepted in every version, not only 1.2: a 1.0/1.1 value never legitimately ends in CR, and every
 *   widely used broker accepts it, so rejecting it would only break clients.
 * - EOLs between frames are reported as heart-beats; the spec allows them after a NUL (§STOMP Frames) and uses
 *   them as heart-beats (§Heart-beating), and the session treats any byte as liveness either way.
 * - A header value may contain further colons (RabbitMQ and ActiveMQ both read it that way).
 * - Limits (STOMP 1.2 §Size Limits): when the same bytes cross two limits, the error names the one crossed at the
 *   earlier byte, so that how the stream was chunked never changes which error a client sees. A frame's size runs
 *   from the command to the end of the body; the closing NUL is not counted, with or without content-length.
 *
 * The parser never throws and never logs. It reports at most one error to its sink and then ignores all input.
 */
import { isUtf8 } from 'node:buffer';
import { unescapeHeader } from './escape.js';
import { FRAME_ERRORS, FrameError, type FrameErrorCode } from './errors.js';
import { EMPTY_BODY, type Frame, type Headers, type StompVersion } from './frame.js';
import { DEFAULT_FRAME_LIMITS, type FrameLimits } from './limits.js';

export interface FrameSink {
  frame(frame: Frame): void;
  /** An EOL between frames. */
  heartbeat?(): void;
  error(error: FrameError): void;
}

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const NUL = 0x00;

const COMMAND = 0;
const HEADERS = 1;
const BODY_BY_LENGTH = 2;
const BODY_TO_NUL = 3;
const EXPECT_NUL = 4;
const STOPPED = 5;
type State = typeof COMMAND | typeof HEADERS | typeof BODY_BY_LENGTH | typeof BODY_TO_NUL | typeof EXPECT_NUL | typeof STOPPED;

/** Never written: between frames the parser points here instead of keeping an empty Map per connection. */
const NO_HEADERS: Headers = new Map();

const CONTENT_LENGTH = /^[0-9]{1,15}$/;

/** Commands whose headers are never escaped (STOMP 1.2 §Value Encoding), so that a 1.0 peer can read them. */
function isConnectCommand(command: string): boolean {
  return command === 'CONNECT' || command === 'STOMP' || command === 'CONNECTED';
}

export class FrameParser {
  #sink: FrameSink;
  #limits: FrameLimits;
  /**
   * Escaping follows the negotiated version. Until the session negotiates one, 1.2 rules apply to everything
   * except CONNECT and STOMP, which are never unescaped.
   */
  version: StompVersion = '1.2';

  #state: State = COMMAND;
  /** Bytes of a command or header line that began in an earlier chunk. */
  #carry: Buffer[] = [];
  #carryBytes = 0;

  #command = '';
  /** A fresh Map per frame, made when its command arrives; idle connections hold only the shared empty one. */
  #headers: Headers = NO_HEADERS;
  #headerCount = 0;
  #frameBytes = 0;
  #remaining = 0;
  #body: Buffer[] = [];
  #bodyBytes = 0;

  constructor(sink: FrameSink, limits: FrameLimits = DEFAULT_FRAME_LIMITS) {
    this.#sink = sink;
    this.#limits = limits;
  }

  /** Limits apply from the next byte on; the session lifts them once a client has authenticated. */
  setLimits(limits: FrameLimits): void {
    this.#limits = limits;
  }

  get stopped(): boolean {
    return this.#state === STOPPED;
  }

  /** Ignore everything from now on (after an ERROR, or once the session is closing). */
  stop(): void {
    this.#state = STOPPED;
    this.#carry = [];
    this.#body = [];
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      switch (this.#state) {
        case COMMAND:
        case HEADERS: {
          const lf = chunk.indexOf(LF, pos);
          if (lf === -1) {
            this.#carryLine(chunk.subarray(pos));
            return;
          }
          let line = chunk.subarray(pos, lf);
          if (this.#carryBytes > 0) {
            this.#carry.push(line);
            line = Buffer.concat(this.#carry, this.#carryBytes + line.length);
            this.#carry = [];
            this.#carryBytes = 0;
          }
          pos = lf + 1;
          if (!this.#line(line)) return;
          break;
        }
        case BODY_BY_LENGTH: {
          const take = Math.min(this.#remaining, end - pos);
          if (take > 0) this.#addBody(chunk.subarray(pos, pos + take));
          pos += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = EXPECT_NUL;
          break;
        }
        case EXPECT_NUL: {
          // STOMP 1.2 §STOMP Frames: with content-length, the octet after the body must still be the NUL.
          if (chunk[pos] !== NUL) {
            this.#fail(FRAME_ERRORS.ERR_MISSING_NUL, 'frame body is longer than its content-length header');
            return;
          }
          pos += 1;
          this.#emit();
          break;
        }
        case BODY_TO_NUL: {
          const nul = chunk.indexOf(NUL, pos);
          const stop = nul === -1 ? end : nul;
          const piece = stop - pos;
          if (!this.#bodyFits(piece)) return;
          if (piece > 0) this.#addBody(chunk.subarray(pos, stop));
          if (nul === -1) return;
          pos = nul + 1;
          this.#emit();
          break;
        }
        case STOPPED:
          return;
      }
    }
  }

  #carryLine(rest: Buffer): void {
    const total = this.#carryBytes + rest.length;
    // Checked before keeping anything: a peer that never sends LF must not grow our memory. One byte more than the
    // line limit may be the CR of a CRLF, so only the byte after that proves the line too long.
    if (!this.#lineFits(total, total > this.#limits.maxHeaderLineBytes + 1)) return;
    if (rest.length > 0) {
      // A copy: the rest of this chunk is tiny, and a view would pin the whole chunk until the line completes.
      this.#carry.push(Buffer.from(rest));
      this.#carryBytes = total;
    }
  }

  /**
   * Checks a line, or the part of it seen so far, against the line and frame limits. `seen` counts its bytes so far
   * (its LF included once it has arrived). When one line crosses both limits, the error is the limit its bytes
   * cross first — the line limit at the line's (max + 2)th byte, the frame limit at the byte that makes the frame
   * one too long — so that every chunking of the same bytes reports the same error. Returns false after failing.
   */
  #lineFits(seen: number, tooLong: boolean): boolean {
    const limits = this.#limits;
    const lineCrossedAt = tooLong ? limits.maxHeaderLineBytes + 2 : Infinity;
    const frameCrossedAt = this.#frameBytes + seen > limits.maxFrameBytes ? limits.maxFrameBytes - this.#frameBytes + 1 : Infinity;
    if (lineCrossedAt === Infinity && frameCrossedAt === Infinity) return true;
    if (lineCrossedAt <= frameCrossedAt) {
      if (this.#state === COMMAND)
        return this.#fail(FRAME_ERRORS.ERR_BAD_COMMAND, `command line exceeds ${limits.maxHeaderLineBytes} bytes`);
      return this.#fail(FRAME_ERRORS.ERR_HEADER_TOO_LONG, `header line exceeds ${limits.maxHeaderLineBytes} bytes`);
    }
    return this.#fail(FRAME_ERRORS.ERR_FRAME_TOO_LARGE, `frame exceeds ${limits.maxFrameBytes} bytes`);
  }

  /** The body counterpart of #lineFits: `extra` more body bytes, reporting whichever limit they cross first. */
  #bodyFits(extra: number): boolean {
    const limits = this.#limits;
    const bodyCrossedAt = this.#bodyBytes + extra > limits.maxBodyBytes ? limits.maxBodyBytes - this.#bodyBytes + 1 : Infinity;
    const frameCrossedAt = this.#frameBytes + extra > limits.maxFrameBytes ? limits.maxFrameBytes - this.#frameBytes + 1 : Infinity;
    if (bodyCrossedAt === Infinity && frameCrossedAt === Infinity) return true;
    if (bodyCrossedAt <= frameCrossedAt)
      return this.#fail(FRAME_ERRORS.ERR_BODY_TOO_LARGE, `frame body exceeds ${limits.maxBodyBytes} bytes`);
    return this.#fail(FRAME_ERRORS.ERR_FRAME_TOO_LARGE, `frame exceeds ${limits.maxFrameBytes} bytes`);
  }

  /** Handles one complete line (without its LF). Returns false when parsing must stop. */
  #line(raw: Buffer): boolean {
    // STOMP 1.2 §Augmented BNF: EOL = [CR] LF.
    const line = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw;
    if (!this.#lineFits(raw.length + 1, line.length > this.#limits.maxHeaderLineBytes)) return false;
    if (this.#state === COMMAND) {
      if (line.length === 0) {
        this.#sink.heartbeat?.();
        return this.#state === COMMAND;
      }
      this.#frameBytes = raw.length + 1;
      if (!isUtf8(line)) return this.#fail(FRAME_ERRORS.ERR_BAD_UTF8, 'command is not valid UTF-8');
      this.#command = line.toString('utf8');
      this.#headers = new Map();
      this.#state = HEADERS;
      return true;
    }

    this.#frameBytes += raw.length + 1;
    if (line.length === 0) return this.#startBody();

    if (++this.#headerCount > this.#limits.maxHeaders) {
      return this.#fail(FRAME_ERRORS.ERR_TOO_MANY_HEADERS, `frame has more than ${this.#limits.maxHeaders} headers`);
    }
    const colon = line.indexOf(COLON);
    if (colon <= 0) {
      return this.#fail(FRAME_ERRORS.ERR_BAD_HEADER, colon === 0 ? 'header with an empty name' : 'header line without a colon');
    }
    // STOMP 1.2 §STOMP Frames: commands and headers are encoded in UTF-8.
    if (!isUtf8(line)) return this.#fail(FRAME_ERRORS.ERR_BAD_UTF8, 'header is not valid UTF-8');
    const text = line.toString('utf8');
    const at = text.indexOf(':');
    let name = text.slice(0, at);
    let value = text.slice(at + 1);
    // STOMP 1.2 §Value Encoding: CONNECT and CONNECTED are never escaped, so their values are taken as they are.
    if (!isConnectCommand(this.#command)) {
      const n = unescapeHeader(name, this.version);
      const v = n === undefined ? undefined : unescapeHeader(value, this.version);
      if (n === undefined || v === undefined) {
        return this.#fail(FRAME_ERRORS.ERR_BAD_ESCAPE, `undefined escape sequence in header "${name}"`);
      }
      name = n;
      value = v;
    }
    // STOMP 1.2 §Repeated Header Entries: the first value is the one that counts. Never trimmed (§Value Encoding).
    if (!this.#headers.has(name)) this.#headers.set(name, value);
    return true;
  }

  #startBody(): boolean {
    const declared = this.#headers.get('content-length');
    if (declared === undefined) {
      this.#state = BODY_TO_NUL;
      return true;
    }
    // STOMP 1.2 §Header content-length: an octet count; nothing else (no sign, no spaces) is a length.
    if (!CONTENT_LENGTH.test(declared)) {
      return this.#fail(FRAME_ERRORS.ERR_BAD_CONTENT_LENGTH, `content-length "${declared}" is not a non-negative integer`);
    }
    const length = Number(declared);
    // Checked before any body byte is kept, by the same rule as a NUL-terminated body (the NUL is not counted).
    if (!this.#bodyFits(length)) return false;
    this.#remaining = length;
    this.#state = length === 0 ? EXPECT_NUL : BODY_BY_LENGTH;
    return true;
  }

  #addBody(piece: Buffer): void {
    this.#body.push(piece);
    this.#bodyBytes += piece.length;
    this.#frameBytes += piece.length;
  }

  #emit(): void {
    const parts = this.#body;
    const body = parts.length === 0 ? EMPTY_BODY : parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, this.#bodyBytes);
    const frame: Frame = { command: this.#command, headers: this.#headers, body };
    this.#command = '';
    this.#headers = NO_HEADERS;
    this.#headerCount = 0;
    this.#frameBytes = 0;
    this.#body = [];
    this.#bodyBytes = 0;
    this.#state = COMMAND;
    this.#sink.frame(frame);
  }

  #fail(code: FrameErrorCode, message: string): false {
    const command = this.#command === '' ? undefined : this.#command;
    this.stop();
    this.#sink.error(new FrameError(code, message, command));
    return false;
  }
}
