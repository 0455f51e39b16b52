import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { eventually } from './processes';

/** A graphql-transport-ws connection driven message by message, recording every message and how it closed. */
export interface RawSocket {
  messages: Array<{ id?: string; type: string; payload?: any }>;
  closed: { code: number; reason: string } | null;
  subscribe(id: string, query: string, variables?: Record<string, unknown>): void;
  /** Sends a frame as it is (for frames a client library would never send). */
  send(text: string): void;
  /** The payloads of the `next` messages of operation `id`. */
  next(id: string): Array<any>;
  /** Closes the socket (1000) and resolves once it has closed. */
  close(): Promise<void>;
}

/** The graphql-ws endpoint of a server at `url` (http://…). */
export const wsUrl = (url: string): string => url.replace(/^http/, 'ws') + '/graphql';

/** Opens a socket with `authorization` in connection_init and waits for connection_ack (fails if the server refuses). */
export async function openSocket(url: string, authorization: string): Promise<RawSocket> {
  const ws = new WebSocket(wsUrl(url), 'graphql-transport-ws');
  const gone = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  const socket: RawSocket = {
    messages: [],
    closed: null,
    subscribe: (id, query, variables) => ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables } })),
    send: (text) => ws.send(text),
    next: (id) => socket.messages.filter((m) => m.id === id && m.type === 'next').map((m) => m.payload),
    close: async () => {
      ws.close(1000);
      await gone;
    },
  };
  ws.on('message', (data) => socket.messages.push(JSON.parse(String(data))));
  ws.on('close', (code, reason) => (socket.closed = { code, reason: reason.toString() }));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization } }));
  await eventually('connection_ack', async () => (socket.messages.some((m) => m.type === 'connection_ack') ? true : socket.closed ? false : undefined), 30_000, 20);
  assert.ok(socket.messages.some((m) => m.type === 'connection_ack'), `socket refused: ${JSON.stringify(socket.closed)}`);
  return socket;
}

/** Waits until operation `id` has been answered with `complete` or `error`. */
export async function answered(socket: RawSocket, id: string): Promise<void> {
  await eventually(`an answer to ${id}`, async () => (socket.messages.some((m) => m.id === id && (m.type === 'complete' || m.type === 'error')) ? true : undefined), 30_000, 20);
}
