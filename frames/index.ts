export { FRAME_ERRORS, FrameError, type FrameErrorCode } from './errors.js';
export { EMPTY_BODY, VERSIONS, frame, type Frame, type Headers, type StompVersion } from './frame.js';
export { DEFAULT_FRAME_LIMITS, type FrameLimits } from './limits.js';
export { escapeHeader, unescapeHeader } from './escape.js';
export { FrameParser, type FrameSink } from './parser.js';
export { HEARTBEAT, MessageTemplate, ackLine, encodeFrame, messagePrefix } from './encoder.js';
