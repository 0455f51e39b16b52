/**
 * `COPY … TO STDOUT` read straight off a connection's socket: the CopyData payloads are taken out
 * of each chunk the socket delivers and handed on as one Buffer per chunk, with no object per
 * message (a binary COPY sends one message per row). node-postgres' own parser makes a message
 * object and a Buffer of every CopyData message; on a large export that was a good share of the
 * server's time spent in garbage collection.
 *
 * While the COPY runs, the connection's socket is read here instead of by node-postgres (its
 * 'data' listener is set aside); at CopyDone, or at any message that is not part of the COPY's
 * data (an ErrorResponse above all), the listener is put back and handed the bytes not yet read,
 * so node-postgres reads the statement's end (CommandComplete, ErrorResponse, ReadyForQuery) as it
 * always does and the connection is left as after any other statement.
 */

import type { EventEmitter } from 'node:events';
import type { ClientBase } from 'pg';

// Backend message types (PostgreSQL protocol v3).
const COPY_OUT_RESPONSE = 0x48; // H
const COPY_DATA = 0x64; // d
const COPY_DONE = 0x63; // c
// Asynchronous messages the backend may send at any time, also during a COPY.
const NOTICE_RESPONSE = 0x4e; // N
const PARAMETER_STATUS = 0x53; // S
const NOTIFICATION_RESPONSE = 0x41; // A

/** Whether a message of this type belongs to the COPY's data stream (anything else ends it). */
const inCopy = (code: number) =>
  code === COPY_DATA || code === COPY_OUT_RESPONSE || code === NOTICE_RESPONSE || code === PARAMETER_STATUS || code === NOTIFICATION_RESPONSE;

/**
 * The framing of the backend's messages during a COPY OUT, read chunk by chunk. `feed` moves the
 * payload bytes of the CopyData messages in a chunk to the chunk's start (in place: a payload only
 * ever moves toward the start, over bytes already read) and hands them to `deliver`; it returns
 * the bytes of the chunk that follow the COPY's data — starting at the first message that is not
 * part of it (CopyDone's successor, or an ErrorResponse) — once it has met that message, else null.
 */
export class CopyOutFrames {
  /** The type of the message being read; -1 between messages. */
  private code = -1;
  /** Bytes of the current message's length word still to read. */
  private lengthLeft = 0;
  private length = 0;
  /** Bytes of the current message's body still to read. */
  private remaining = 0;
  /** Whether CopyDone has been read (the COPY's data is complete). */
  done = false;
  /** Whether the COPY ended at a message that is not CopyDone (an error, or a statement that was not a COPY TO). */
  interrupted = false;

  feed(chunk: Buffer, deliver: (data: Buffer) => void): Buffer | null {
    const n = chunk.length;
    let p = 0;
    let w = 0;
    let rest: Buffer | null = null;
    while (p < n) {
      if (this.code === -1) {
        const code = chunk[p];
        if (!inCopy(code) && code !== COPY_DONE) {
          this.interrupted = true;
          rest = chunk.subarray(p);
          break;
        }
        this.code = code;
        this.lengthLeft = 4;
        this.length = 0;
        p += 1;
        continue;
      }
      if (this.lengthLeft > 0) {
        this.length = this.length * 256 + chunk[p++];
        if (--this.lengthLeft === 0) {
          if (this.length < 4) throw new Error(`a protocol message of length ${this.length} during COPY`);
          this.remaining = this.length - 4;
          if (this.remaining === 0 && this.end()) {
            rest = chunk.subarray(p);
            break;
          }
        }
        continue;
      }
      const take = Math.min(this.remaining, n - p);
      if (this.code === COPY_DATA) {
        if (w !== p) chunk.copyWithin(w, p, p + take);
        w += take;
      }
      p += take;
      this.remaining -= take;
      if (this.remaining === 0 && this.end()) {
        rest = chunk.subarray(p);
        break;
      }
    }
    if (w > 0) deliver(chunk.subarray(0, w));
    return rest;
  }

  /** A message has been read to its end; true at CopyDone. */
  private end(): boolean {
    this.done = this.code === COPY_DONE;
    this.code = -1;
    return this.done;
  }
}

interface Connection {
  stream: EventEmitter;
  query(text: string): void;
  sendCopyFail(message: string): void;
}

/** A statement node-postgres runs as any other (`client.query(submittable)`), whose COPY data bypasses its parser. */
class CopyOutQuery {
  private readonly frames = new CopyOutFrames();
  private connection?: Connection;
  private pgData?: (chunk: Buffer) => void;
  private consumerError: unknown;
  /** Set when node-postgres failed the statement while its COPY data was still arriving (a query_timeout). */
  private abandoned = false;
  /** Set when the text held more than the one COPY statement. */
  private extra = false;
  private completions = 0;
  private settled = false;
  rows = 0;
  /** Set by node-postgres when it wraps the statement (its query_timeout timer is cleared through it). */
  callback?: (error: unknown, result?: unknown) => void;

  constructor(
    readonly text: string,
    private readonly onData: (data: Buffer) => void,
    private readonly resolve: (rows: number) => void,
    private readonly reject: (error: unknown) => void,
  ) {}

  /** Sends the statement; an Error returned instead is handed back by node-postgres through handleError, the connection untouched. */
  submit(connection: Connection): Error | undefined {
    const listeners = connection.stream.listeners('data') as Array<(chunk: Buffer) => void>;
    if (listeners.length !== 1) return new Error(`cannot read a COPY: the connection's socket has ${listeners.length} data listeners, expected 1`);
    this.connection = connection;
    this.pgData = listeners[0];
    connection.stream.removeListener('data', this.pgData);
    connection.stream.on('data', this.onChunk);
    connection.query(this.text);
    return undefined;
  }

  private readonly deliver = (data: Buffer) => {
    // After the consumer failed, the COPY is still read to its end, so the statement ends cleanly.
    if (this.consumerError !== undefined || this.abandoned) return;
    try {
      this.onData(data);
    } catch (e) {
      this.consumerError = e;
    }
  };

  private readonly onChunk = (chunk: Buffer) => {
    let rest: Buffer | null;
    try {
      rest = this.frames.feed(chunk, this.deliver);
    } catch (e) {
      // Framing that makes no sense: the connection cannot be trusted further.
      this.detach(null);
      this.fail(e);
      (this.connection!.stream as unknown as { destroy(error?: Error): void }).destroy(e as Error);
      return;
    }
    if (rest) this.detach(rest);
  };

  /** Gives the socket back to node-postgres, with the bytes it has not read yet. */
  private detach(rest: Buffer | null): void {
    const stream = this.connection!.stream;
    stream.removeListener('data', this.onChunk);
    stream.on('data', this.pgData!);
    if (rest && rest.length > 0) this.pgData!(rest);
  }

  private fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.callback?.(error);
    this.reject(error);
  }

  // What node-postgres calls on the active statement, from the messages it reads after the COPY's data.

  handleCommandComplete(msg: { text?: string }): void {
    if (++this.completions > 1) this.extra = true;
    const m = /^COPY (\d+)/.exec(msg.text ?? '');
    if (m) this.rows = Number(m[1]);
  }

  handleReadyForQuery(): void {
    if (this.settled) return;
    if (this.consumerError !== undefined) return this.fail(this.consumerError);
    if (!this.frames.done) return this.fail(new Error('the statement was not a COPY … TO STDOUT'));
    if (this.extra) return this.fail(new Error('one COPY … TO STDOUT statement expected, the text held more'));
    this.settled = true;
    this.callback?.(null, this.rows);
    this.resolve(this.rows);
  }

  handleError(error: unknown): void {
    const attached = this.connection !== undefined && this.connection.stream.listeners('data').includes(this.onChunk);
    if (attached) {
      const stream = this.connection!.stream as unknown as { destroyed: boolean };
      // The connection ended mid-COPY: give the socket back (there is nothing more to read).
      if (stream.destroyed) this.detach(null);
      // Failed by node-postgres while the data still arrives (its query_timeout): the COPY is read
      // to its end, without delivering more, so the connection reaches ReadyForQuery in step.
      else this.abandoned = true;
    }
    this.fail(error);
  }

  handleCopyInResponse(connection: Connection): void {
    connection.sendCopyFail('a COPY FROM is not read here');
  }

  // Messages of a statement other than one COPY TO (a SELECT, or a second statement after it).
  handleRowDescription(): void {
    this.extra = true;
  }
  handleDataRow(): void {
    this.extra = true;
  }
  handleCopyData(): void {
    this.extra = true;
  }
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
}

/**
 * Runs `sql` (a `COPY … TO STDOUT`) on `client` and hands its data to `onData` as it arrives, a
 * Buffer per socket chunk (part of that chunk's memory, which nothing writes to afterwards, so it
 * may be kept). Settles once the statement has ended and the connection is ready for the next one: with the
 * number of rows copied, or with PostgreSQL's error, or with the first error `onData` threw (the
 * COPY is then still read to its end, without delivering more).
 */
export function copyOut(client: ClientBase, sql: string, onData: (data: Buffer) => void): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    void client.query(new CopyOutQuery(sql, onData, resolve, reject) as never);
  });
}
