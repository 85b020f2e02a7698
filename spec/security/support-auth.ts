/** Users files, captured logs and CONNECT headers for the authorization and authentication specs. */
import { writeFile } from 'node:fs/promises';
import { hashPassword, type Logger } from '../../broker/index.js';

/** Writes `{"users": ...}`, hashing every `password` given in clear text (strings are legacy entries). */
export async function writeUsers(path: string, users: Record<string, string | Record<string, unknown>>): Promise<void> {
  const out: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(users)) {
    out[name] =
      typeof entry === 'string' ? await hashPassword(entry) : { ...entry, password: await hashPassword(entry.password as string) };
  }
  await writeFile(path, JSON.stringify({ users: out }, null, 2));
}

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A Logger that keeps every line, for asserting what was logged (and what never was). */
export function captureLogger(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): Logger & { lines: LogLine[] } {
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      if (typeof obj === 'string') lines.push({ level, msg: obj, fields: { ...bindings } });
      else lines.push({ level, msg: msg ?? '', fields: { ...bindings, ...obj } });
    };
  return {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => captureLogger(lines, { ...bindings, ...more }),
  };
}

/** CONNECT headers of a 1.2 client with these credentials on `host`. */
export function as(login: string, passcode: string, host = 'localhost'): Record<string, string> {
  return { 'accept-version': '1.2', host, login, passcode };
}
