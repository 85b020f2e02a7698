/**
 * Stable codes for every way a byte stream can fail to be STOMP. They are public API: tests, metrics and the
 * ERROR frames a client sees all name the same code, so a code is never renamed once shipped.
 */
export const FRAME_ERRORS = Object.freeze({
  ERR_FRAME_TOO_LARGE: 'ERR_FRAME_TOO_LARGE',
  ERR_BODY_TOO_LARGE: 'ERR_BODY_TOO_LARGE',
  ERR_TOO_MANY_HEADERS: 'ERR_TOO_MANY_HEADERS',
  ERR_HEADER_TOO_LONG: 'ERR_HEADER_TOO_LONG',
  ERR_BAD_HEADER: 'ERR_BAD_HEADER',
  ERR_BAD_ESCAPE: 'ERR_BAD_ESCAPE',
  ERR_BAD_COMMAND: 'ERR_BAD_COMMAND',
  ERR_BAD_CONTENT_LENGTH: 'ERR_BAD_CONTENT_LENGTH',
  ERR_MISSING_NUL: 'ERR_MISSING_NUL',
  ERR_BAD_UTF8: 'ERR_BAD_UTF8',
} as const);

export type FrameErrorCode = (typeof FRAME_ERRORS)[keyof typeof FRAME_ERRORS];

/** What the parser reports, once, before it stops. `message` is short enough for an ERROR `message` header. */
export class FrameError extends Error {
  readonly code: FrameErrorCode;
  /** The command of the frame being read when the error happened, when it was already known. */
  readonly command: string | undefined;

  constructor(code: FrameErrorCode, message: string, command?: string) {
    super(message);
    this.name = 'FrameError';
    this.code = code;
    this.command = command;
  }
}
