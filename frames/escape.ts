import type { StompVersion } from './frame.js';

// STOMP 1.2 §Value Encoding: "\r" (1.2 only), "\n", "\c" and "\\" are the only escapes. 1.0 has none at all, and
// CONNECT/CONNECTED are never escaped in any version so that 1.0 peers can read them (the caller decides that).

const BACKSLASH = 0x5c;

/**
 * Decodes one header name or value in a single pass. Returns undefined on an escape the version does not define,
 * which the spec makes a fatal protocol error.
 */
export function unescapeHeader(raw: string, version: StompVersion): string | undefined {
  if (version === '1.0') return raw;
  let at = raw.indexOf('\\');
  if (at === -1) return raw;
  let out = '';
  let from = 0;
  while (at !== -1) {
    out += raw.slice(from, at);
    const next = raw.charCodeAt(at + 1);
    switch (next) {
      case 0x6e:
        out += '\n';
        break; // \n
      case 0x63:
        out += ':';
        break; // \c
      case BACKSLASH:
        out += '\\';
        break;
      case 0x72: // \r exists only in 1.2; in 1.1 it is an undefined escape
        if (version !== '1.2') return undefined;
        out += '\r';
        break;
      default:
        return undefined;
    }
    from = at + 2;
    at = raw.indexOf('\\', from);
  }
  return out + raw.slice(from);
}

const NEEDS_ESCAPE_11 = /[\\\n:]/;
const NEEDS_ESCAPE_12 = /[\\\r\n:]/;

/** Encodes one header name or value for the given version; 1.0 sends text as it is. */
export function escapeHeader(value: string, version: StompVersion): string {
  // 1.0 cannot carry CR or LF in a header at all; sent raw they would forge headers (or end the header block)
  // for a 1.0 subscriber, so they become spaces.
  if (version === '1.0') return /[\r\n]/.test(value) ? value.replace(/[\r\n]/g, ' ') : value;
  const pattern = version === '1.2' ? NEEDS_ESCAPE_12 : NEEDS_ESCAPE_11;
  if (!pattern.test(value)) return value;
  let out = '';
  for (const ch of value) {
    switch (ch) {
      case '\\':
        out += '\\\\';
        break;
      case '\n':
        out += '\\n';
        break;
      case ':':
        out += '\\c';
        break;
      case '\r':
        out += version === '1.2' ? '\\r' : '\r';
        break;
      default:
        out += ch;
    }
  }
  return out;
}
