// Types of the fastapi-channels browser client (channels.js).

/** Close codes after which the client connects again. */
export declare const RETRY_CODES: readonly number[];
/** The code the client closes with to connect again at once, when publications of a channel went missing. */
export declare const RESYNC_CODE: 4000;

/** Whether a connection closed with `code` is tried again by default. */
export declare function shouldRetry(code: number): boolean;
/** The delay in ms before reconnect `attempt` (1, 2, ...): exponential, capped, minus a random share. */
export declare function backoffDelay(attempt: number, backoff?: Partial<Backoff>, random?: () => number): number;

/** How long to wait before each reconnect, in milliseconds. */
export interface Backoff {
  /** The first delay (500). */
  initial: number;
  /** The longest delay (30000). */
  max: number;
  /** Each delay is the one before times this (2). */
  factor: number;
  /** A random share of each delay, from 0 to 1, taken off so that clients come back spread out (0.5). */
  jitter: number;
  /** Reconnects in a row before giving up (Infinity). */
  maxAttempts: number;
}

/** Where the client keeps positions across page loads: sessionStorage, localStorage, or your own. */
export interface PositionStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface ChannelClientOptions {
  /** Subprotocols to offer, e.g. ["access_token." + token]. */
  protocols?: string | string[];
  backoff?: Partial<Backoff>;
  /** Resume channels with history from the last publication handled (true). */
  resume?: boolean;
  /** Milliseconds a request() waits for its reply (10000). */
  requestTimeout?: number;
  /** Keep positions here, so that a reloaded page resumes too (none). */
  storage?: PositionStorage | null;
  /** The storage key ("fastapi-channels:" + the URL). */
  storageKey?: string;
  /** The connection's own channel, to resume it from a position set before the first connect. */
  channel?: string | null;
  /** Whether to reconnect after a close; the default follows RETRY_CODES. */
  retry?: (close: { code: number; reason: string }) => boolean;
}

/** A place in a channel's stream. */
export interface Position {
  offset: number;
  epoch: string;
}

/** An error frame from the server, as protocol.md describes it. */
export interface ErrorFrame {
  type: "response";
  status: string;
  action: string | null;
  request_id: number | string | null;
  errors: string;
  code: number;
  close: boolean;
  detail?: Array<{ loc: Array<string | number>; msg: string; type: string }>;
  data?: unknown;
  [extra: string]: unknown;
}

/** A reply frame: what an action returned. */
export interface ReplyFrame<T = unknown> {
  type: "response";
  status: "ok";
  action: string;
  request_id: number | string | null;
  data: T;
}

/** A request the server refused, or that the connection could not answer. */
export declare class ChannelError extends Error {
  constructor(message: string, options?: { frame?: ErrorFrame | null; code?: number | null; timeout?: boolean });
  name: "ChannelError";
  /** The error frame, when the server refused the request. */
  frame: ErrorFrame | null;
  /** The error frame's code, or the close code when the connection closed first. */
  code: number | null;
  /** Whether no reply came within the timeout. */
  timeout: boolean;
}

/** A message that is no reply and no publication; `data` when it is JSON, `text` otherwise. */
export interface MessageDetail {
  data?: unknown;
  text?: string;
  /** The channel it was broadcast to, when the server said (connections in several channels); else null. */
  channel: string | null;
}

export interface PublicationDetail extends Position {
  channel: string;
  data?: unknown;
  text?: string;
}

export interface ResumeDetail extends Position {
  channel: string;
  /** False: what was missed is gone (or this is a first visit): load the state afresh. */
  recovered: boolean;
}

export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface ChannelEventMap {
  open: { url: string; protocol: string; attempt: number };
  close: { code: number; reason: string; wasClean: boolean; willRetry: boolean };
  reconnecting: { attempt: number; delay: number };
  state: { state: ClientState };
  message: MessageDetail;
  publication: PublicationDetail;
  resume: ResumeDetail;
  gap: { channel: string; expected: number; offset: number; epoch: string };
  reply: { frame: ReplyFrame };
  /** An error frame no request() is waiting for (a refused connection, a send(), a failed subscription). */
  error: { frame: ErrorFrame; channel: string | null };
  join: { channel: string };
  leave: { channel: string };
  drain: { reason: string; reconnectIn: number };
  /** Every frame received that is JSON, before it is handled: for logs and developer panels. */
  frame: { frame: unknown; text: string };
  /** Every frame sent. */
  send: { frame: Record<string, unknown> };
}

/** One connection to a channel endpoint, kept open across drops, with its extra channels and positions. */
export declare class ChannelClient extends EventTarget {
  constructor(url: string | URL, options?: ChannelClientOptions);
  readonly state: ClientState;
  /** The URL the next connection opens, with the position of the connection's channel when it resumes. */
  readonly url: string;
  /** The connection's own channel, once a publication or resume frame named it (or as given). */
  readonly channel: string | null;
  /** The channels subscribed to beyond the connection's own. */
  readonly channels: string[];
  position(channel: string): Position | undefined;
  on<K extends keyof ChannelEventMap>(type: K, listener: (detail: ChannelEventMap[K]) => void): () => void;
  connect(): Promise<void>;
  close(code?: number, reason?: string): void;
  send(action: string, payload?: Record<string, unknown>): Record<string, unknown>;
  request<T = unknown>(action: string, payload?: Record<string, unknown>, options?: { timeout?: number }): Promise<T>;
  subscribe(channel: string, position?: Partial<Position>): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
}
