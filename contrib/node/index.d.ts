/// <reference types="node" />

/** One Kafka message (swarm-handler(7)). */
export interface Message {
  topic: string;
  partition: number;
  /** A JavaScript number: exact up to 2^53, far beyond any real offset. */
  offset: number;
  /** Milliseconds since the epoch; -1 when the broker gave none. */
  timestamp: number;
  /** null without a key. */
  key: Buffer | null;
  /** null for a tombstone (a deletion on a compacted topic). */
  value: Buffer | null;
  /** In order, repeated names kept. */
  headers: Array<[string, Buffer | null]>;
  tombstone: boolean;
}

/** OK (or true/undefined/null), DEFER, or fail("why"). */
export type Result = string | boolean | null | undefined;

/** undefined: every message handled; else one result per message. */
export type Handler = (batch: Message[]) => void | Iterable<Result> | Promise<void | Iterable<Result>>;

export declare const OK: "ok";
export declare const DEFER: "defer";
export declare class ProtocolError extends Error {}
export declare function fail(reason: unknown): string;
export declare function answers(batch: Message[], results: void | Iterable<Result>): string;
export declare function batches(input: AsyncIterable<Buffer>, protocol?: string): AsyncGenerator<Message[]>;
export declare function run(
  handle: Handler,
  options?: { input?: AsyncIterable<Buffer>; output?: NodeJS.WritableStream; protocol?: string },
): Promise<void>;
