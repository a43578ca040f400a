// The chat application's settings, from environment variables (an ASGI app sees no CLI flags;
// the contract says each worker inherits the environment of the command that started the server).
//
//   CHAT_HISTORY_SIZE        messages a newcomer receives on arrival     (default 50)
//   CHAT_QUEUE_MAX_MESSAGES  per-subscriber queue bound, in messages     (default 1000)
//   CHAT_QUEUE_MAX_BYTES     per-subscriber queue bound, in bytes        (default 1048576)
//   CHAT_MAX_SENDER_LENGTH   longest sender name, in characters          (default 64)
//   CHAT_MAX_MESSAGE_LENGTH  longest message, in characters              (default 4096)

export interface ChatConfig {
  historySize: number;
  queueMaxMessages: number;
  queueMaxBytes: number;
  maxSenderLength: number;
  maxMessageLength: number;
}

/** Reads the settings; throws an Error naming the variable when one is malformed. */
export function readChatConfig(env: NodeJS.ProcessEnv = process.env): ChatConfig {
  const read = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new Error(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };
  const config = {
    historySize: read('CHAT_HISTORY_SIZE', 50, 0, 10_000),
    queueMaxMessages: read('CHAT_QUEUE_MAX_MESSAGES', 1000, 1, 1_000_000),
    queueMaxBytes: read('CHAT_QUEUE_MAX_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
    maxSenderLength: read('CHAT_MAX_SENDER_LENGTH', 64, 1, 1024),
    maxMessageLength: read('CHAT_MAX_MESSAGE_LENGTH', 4096, 1, 1024 * 1024),
  };
  // A newcomer's history goes into its queue first: it must fit.
  if (config.historySize > config.queueMaxMessages) {
    throw new Error(`CHAT_HISTORY_SIZE (${config.historySize}) must not exceed CHAT_QUEUE_MAX_MESSAGES (${config.queueMaxMessages})`);
  }
  return config;
}
