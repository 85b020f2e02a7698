/**
 * Secrets in connection strings, masked wherever a URL may be shown: `--print-config`, log lines, start-up errors.
 * It lives among the ports because the engines (bridge/) mask the addresses in their own errors too.
 *
 * A URL's password runs from the first `:` after `scheme://` to the LAST `@` of that URL, so a password holding an
 * unescaped `@`, `/`, `?` or `#` is masked whole (masking too much is the safe mistake). A list of URLs
 * (`redis://:a@h1:7000,redis://:b@h2:7001`) is masked URL by URL, and so is free text holding URLs. Query
 * parameters that carry secrets (`?password=`, `&token=` …) are masked too.
 */

/** Where a value is masked whole: settings that hold nothing but a secret. */
export const MASK = '***';

const URL_START = /[a-z][a-z0-9+.-]*:\/\//gi;
const SECRET_PARAM = /([?&;](?:password|pass|passwd|pwd|secret|token|sasl_password|auth)=)[^&#\s,]*/gi;

/** One URL (no whitespace, no list): `scheme://user:***@host…`. */
function maskOne(url: string): string {
  const start = url.indexOf('://');
  if (start === -1) return url.replace(SECRET_PARAM, `$1${MASK}`);
  const rest = url.slice(start + 3);
  const at = rest.lastIndexOf('@');
  let masked = url;
  if (at !== -1) {
    const userinfo = rest.slice(0, at);
    const colon = userinfo.indexOf(':');
    // `user@host` holds no password; `user:pw@host` and `:pw@host` do.
    if (colon !== -1) masked = `${url.slice(0, start + 3)}${userinfo.slice(0, colon)}:${MASK}@${rest.slice(at + 1)}`;
  }
  return masked.replace(SECRET_PARAM, `$1${MASK}`);
}

/** Masks the passwords of every URL in `text` (a single URL, a comma-separated list, or a message quoting them). */
export function maskSecrets(text: string): string {
  return text
    .split(/(\s+)/)
    .map((word) => {
      const starts = [...word.matchAll(URL_START)].map((m) => m.index);
      if (starts.length === 0) return word.replace(SECRET_PARAM, `$1${MASK}`);
      // Each URL runs until the next one starts (lists are `url,url`): a later URL's `@` never hides an earlier host.
      const first = starts[0] as number;
      let out = word.slice(0, first);
      for (let i = 0; i < starts.length; i++) out += maskOne(word.slice(starts[i], starts[i + 1] ?? word.length));
      return out;
    })
    .join('');
}
