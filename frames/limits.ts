/** Bounds the parser checks before it allocates anything. Every number is in bytes or counts, as named. */
export interface FrameLimits {
  /** Command line, headers (EOLs included) and body together; the closing NUL is not counted. */
  readonly maxFrameBytes: number;
  readonly maxBodyBytes: number;
  readonly maxHeaders: number;
  /** One header line (name, colon and value, escaped) or the command line. */
  readonly maxHeaderLineBytes: number;
}

/**
 * RabbitMQ settled on 4 MiB frames after users hit its smaller limit (rabbitmq-server#2567); ActiveMQ caps a header
 * at 10 KiB and a frame at 1000 headers. We follow both: generous for real payloads, finite for garbage.
 */
export const DEFAULT_FRAME_LIMITS: FrameLimits = Object.freeze({
  maxFrameBytes: 4 * 1024 * 1024 + 64 * 1024,
  maxBodyBytes: 4 * 1024 * 1024,
  maxHeaders: 1000,
  maxHeaderLineBytes: 10 * 1024,
});
