// What the chat's primary keeps, built in one place for both modes (the cluster primary in
// primary.ts, the single process in broadcast.ts's createHub): the lobby's broadcast loop and the
// rooms' store, with the message log (chat-log.ts) behind both when CHAT_DATA_DIR is set, read back
// into them before anything is served.
import { BroadcastLoop, type LobbyLog } from './broadcast.js';
import { ChatLog, openChatLog } from './chat-log.js';
import type { LogFiles } from './log/message-log.js';
import type { ChatConfig } from './config.js';
import { LogStore } from './rooms/log-store.js';
import { MemoryStore } from './rooms/memory-store.js';
import type { RoomStore } from './rooms/store.js';
import { log } from './server/logger.js';
import { openSharedChat, type SharedChat } from './shared-chat.js';

export interface ChatMemory {
  loop: BroadcastLoop;
  store: RoomStore;
  /** The message log, or null when CHAT_DATA_DIR is empty (memory only) or Redis is the log. */
  chatLog: ChatLog | null;
  /** The chat shared through Redis (CHAT_REDIS_URL), or null. */
  shared: SharedChat | null;
  /** Closes the log (after the last publish): flushes what is pending. */
  close(): Promise<void>;
}

/** `files`: the log's file operations (tests inject faults; default node:fs). */
export async function openChatMemory(config: ChatConfig, files?: LogFiles): Promise<ChatMemory> {
  if (config.redisUrl !== null) {
    // Every tree must compute the same ids from the shared log: none may start from its own
    // clock, as a single server does (shared-chat.ts gives the first ids).
    const memory = new MemoryStore({
      historyLimit: config.historySize,
      dedupeLimit: config.dedupeMaxEntries,
      dedupeWindowMs: config.dedupeWindow * 1000,
      firstMessageId: 0,
      firstRoomId: 0,
    });
    if (config.dataDir !== null && process.env.CHAT_DATA_DIR !== undefined) log.info(`message log: CHAT_REDIS_URL is set, so Redis is the log and CHAT_DATA_DIR (${config.dataDir}) is not used`);
    const loop = new BroadcastLoop(config.historySize);
    const shared = await openSharedChat(config, memory, loop);
    loop.useShared(shared);
    return { loop, store: shared, chatLog: null, shared, close: () => shared.close() };
  }
  const memory = new MemoryStore({
    historyLimit: config.historySize,
    dedupeLimit: config.dedupeMaxEntries,
    dedupeWindowMs: config.dedupeWindow * 1000,
  });
  if (config.dataDir === null) {
    log.info('message log: off (CHAT_DATA_DIR is empty): the chat keeps everything in memory only, and loses it at a restart');
    return { loop: new BroadcastLoop(config.historySize), store: memory, chatLog: null, shared: null, close: () => Promise.resolve() };
  }
  // The loop appends to the log, and the log is read back into the loop: the loop gets a handle
  // that points at the log once it is open (nothing is published before then).
  let chatLog: ChatLog | null = null;
  const lobbyLog: LobbyLog = {
    appendLobby: (text) => chatLog!.appendLobby(text),
    whenDurable: (done) => chatLog!.whenDurable(done),
  };
  const loop = new BroadcastLoop(config.historySize, lobbyLog);
  chatLog = await openChatLog({
    dir: config.dataDir,
    segmentBytes: config.logSegmentBytes,
    rooms: memory,
    dedupeWindowMs: config.dedupeWindow * 1000,
    lobby: loop,
    files,
  });
  const opened = chatLog;
  return { loop, store: new LogStore(memory, opened), chatLog: opened, shared: null, close: () => opened.close() };
}
