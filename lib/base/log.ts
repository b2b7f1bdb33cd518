/**
 * A small structured logger: one JSON object per line, `{ts, level, msg, ...fields}`.
 *
 * It replaces `jsr:@std/log`, which cannot be fetched where this project builds. Only the logger
 * writes to the console. Callers must never pass key material as a field; the credential code
 * only ever logs paths, sizes and public facts.
 *
 * @module
 */

/** Log levels, lowest first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Structured fields of a log line. Stable keys: lease, holder, path, pid, reason, err. */
export type LogFields = Record<string, unknown>;

/** The logger interface every module receives. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: LogFields): Logger;
}

/** Where finished lines go; the default writes to stdout (debug/info) or stderr (warn/error). */
export type LogSink = (line: string, level: LogLevel) => void;

function consoleSink(line: string, level: LogLevel): void {
  if (level === "warn" || level === "error") console.error(line);
  else console.log(line);
}

/** Creates a JSON-lines logger that drops lines below `level`. */
export function createLogger(
  level: LogLevel = "info",
  sink: LogSink = consoleSink,
  base: LogFields = {},
): Logger {
  const min = LOG_LEVELS.indexOf(level);
  function emit(lvl: LogLevel, msg: string, fields?: LogFields): void {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    const line: Record<string, unknown> = { ts: new Date().toISOString(), level: lvl, msg };
    for (const [key, value] of Object.entries({ ...base, ...fields })) {
      line[key] = value instanceof Error ? errorText(value) : value;
    }
    sink(JSON.stringify(line), lvl);
  }
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    with: (fields) => createLogger(level, sink, { ...base, ...fields }),
  };
}

/** A one-line description of an error and its causes, for the `err` field. */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const text = `${err.name}: ${err.message}`;
  return err.cause === undefined ? text : `${text} (cause: ${errorText(err.cause)})`;
}
