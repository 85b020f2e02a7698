/**
 * The name and version this node reports (CONNECTED `server`, `stompede_info`, `--version`). One constant, so
 * reading the version from package.json instead is a change to this file only.
 */
export const SERVER_NAME = 'stompede';
export const SERVER_VERSION = '0.1.0';
