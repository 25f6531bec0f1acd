/**
 * Keeps what a provider logs while a test runs, for the tests to read.
 *
 * @module
 */
import { configure, type LogLevel, type LogRecord, reset } from "@logtape/logtape";

/**
 * Runs `fn` with every record of the `retake.<provider>` logger at `lowestLevel` or above kept
 * in `records` (and passed to `onRecord` as it comes), then resets the logging.
 */
export async function withLogs(
  provider: string,
  lowestLevel: LogLevel,
  fn: (records: LogRecord[]) => Promise<void>,
  onRecord: (record: LogRecord) => void = () => {},
): Promise<void> {
  const records: LogRecord[] = [];
  await configure({
    sinks: {
      buffer: (record) => {
        records.push(record);
        onRecord(record);
      },
    },
    loggers: [
      { category: ["retake", provider], lowestLevel, sinks: ["buffer"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  try {
    await fn(records);
  } finally {
    await reset();
  }
}

/** The text of a log record, its message's parts joined. */
export function textOf(record: LogRecord): string {
  return record.message.map(String).join("");
}
