import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { signToken } from '../src/access/authenticate';
import type { Config } from '../src/config';
import { percentile, printTable } from './stats';

interface Instance {
  child: ChildProcess;
  url: string;
  config: Config;
  target: { teamId: string; deploymentId: string; modelVersionId: string } | null;
  ask(msg: Record<string, unknown>, reply?: string): Promise<any>;
  stop(): Promise<void>;
}

async function instance(join?: Config): Promise<Instance> {
  const child = fork(path.join(__dirname, 'alerts-server.js'), [], {
    env: { ...process.env, ...(join ? { BENCH_JOIN_CONFIG: JSON.stringify(join) } : {}) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: process.env.BENCH_PROFILE_DIR && !join ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [],
  });
  const ready = await new Promise<any>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`alerts bench server exited with ${code}`)));
    child.on('message', (m: any) => m.op === 'ready' && resolve(m));
  });
  const ask = (msg: Record<string, unknown>, reply?: string) =>
    new Promise<any>((resolve) => {
      if (!reply) {
        child.send(msg);
        return resolve(undefined);
      }
      const on = (m: any) => {
        if (m.op === reply) {
          child.off('message', on);
          resolve(m);
        }
      };
      child.on('message', on);
      child.send(msg);
    });
  return {
    child,
    url: ready.url,
    config: ready.config,
    target: ready.target,
    ask,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send({ op: 'stop' });
      await exited;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `npm run bench -- alerts`: two API instances (processes) on one database and Redis, 1,000
 * WebSocket subscribers split over them (this process), 100 alerts published at 10 per second
 * alternately on either instance: delivered share and publish-to-receive latency; then a consumer
 * that stops reading while alerts keep coming: what it costs the server, and when it is cut off.
 */
export async function alertsBench(): Promise<void> {
  const subscribers = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
  const alerts = Number(process.env.BENCH_ALERTS ?? 100);
  const a = await instance();
  const b = await instance(a.config);
  const sockets: WebSocket[] = [];
  try {
    const token = signToken(a.config.jwtSecret, { sub: 'bench-viewer', roles: ['viewer'], teams: ['alerts-bench'] });
    // Each subscriber notes when a message comes off its socket, and the publish time it carries,
    // read straight off the bytes. Parsing the whole message is the subscriber's work: 1,000 of them
    // share this process here, where in use each has its own, and parsing (and keeping) each one as
    // it came would queue later arrivals behind it, and its garbage collections, and count that as
    // delivery time.
    const latencies: number[] = [];
    let counting = false;
    let connected = 0;
    const query = 'subscription { alerts { feature lastSeenAt } }';
    const SENT = Buffer.from('"lastSeenAt":"');
    for (let i = 0; i < subscribers; i++) {
      const url = (i % 2 ? b.url : a.url).replace(/^http/, 'ws') + '/graphql';
      const socket = new WebSocket(url, 'graphql-transport-ws');
      sockets.push(socket);
      let acknowledged = false;
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
      socket.on('error', () => undefined);
      socket.on('message', (data: Buffer) => {
        const at = Date.now();
        if (acknowledged) {
          const k = data.indexOf(SENT);
          if (k >= 0 && counting) latencies.push(at - Date.parse(data.toString('latin1', k + SENT.length, k + SENT.length + 24)));
          return;
        }
        if (JSON.parse(data.toString()).type !== 'connection_ack') return;
        acknowledged = true;
        connected++;
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query } }));
      });
    }
    const until = Date.now() + 60_000;
    while (connected < subscribers && Date.now() < until) await sleep(100);
    // Subscriptions start right after the connection is acknowledged; give them a moment.
    await sleep(2000);

    const executed = async () => (await a.ask({ op: 'executions' }, 'executions')).count + (await b.ask({ op: 'executions' }, 'executions')).count;
    // Warm-up: the first alerts on each instance meet cold code (the subscription's first
    // executions, the first writes); they are sent and received, not counted.
    const WARMUP = 10;
    for (let seq = 0; seq < WARMUP; seq++) {
      await (seq % 2 ? b : a).ask({ op: 'publish', target: a.target, seq: -1 - seq });
      await sleep(100);
    }
    await sleep(1000);
    counting = true;
    const executedBefore = await executed();
    await Promise.all([a.ask({ op: 'loop-reset' }, 'loop-reset'), b.ask({ op: 'loop-reset' }, 'loop-reset')]);
    const here = monitorEventLoopDelay({ resolution: 1 });
    here.enable();
    for (let seq = 0; seq < alerts; seq++) {
      await (seq % 2 ? b : a).ask({ op: 'publish', target: a.target, seq });
      await sleep(100);
    }
    await sleep(3000);
    const executions = (await executed()) - executedBefore;
    counting = false;
    here.disable();
    const loops = await Promise.all([a.ask({ op: 'loop-read' }, 'loop-read'), b.ask({ op: 'loop-read' }, 'loop-read')]);
    latencies.sort((x, y) => x - y);
    const delivered = latencies.length / (subscribers * alerts);
    printTable(`Alerts to ${subscribers} WebSocket subscribers over 2 API instances (${alerts} alerts, 10 per second, alternating instances). Target: 100 % delivered, p99 <= 100 ms.`, [
      {
        subscribers,
        connected,
        alerts,
        'expected deliveries': subscribers * alerts,
        delivered: latencies.length,
        'delivered share': `${(delivered * 100).toFixed(2)} %`,
        'p50 ms': percentile(latencies, 50),
        'p99 ms': percentile(latencies, 99),
        'max ms': latencies[latencies.length - 1] ?? NaN,
        // One access class here (every subscriber is the same viewer): the floor is one per alert and instance.
        'executions': executions,
        'executions per alert': (executions / alerts).toFixed(1),
        'servers loop p99 / max ms': loops.map((l) => `${l.p99Ms.toFixed(0)} / ${l.maxMs.toFixed(0)}`).join(', '),
        'subscribers loop p99 / max ms': `${(here.percentile(99) / 1e6).toFixed(0)} / ${(here.max / 1e6).toFixed(0)}`,
      },
    ]);
    for (const c of sockets) c.close();
    sockets.length = 0;
    await sleep(1000);

    // A consumer that stops reading: the server keeps what it cannot send, up to WS_MAX_BUFFERED_BYTES.
    const before = await a.ask({ op: 'memory' }, 'memory');
    const slow = new WebSocket(a.url.replace(/^http/, 'ws') + '/graphql', 'graphql-transport-ws');
    const closed = new Promise<{ code: number; reason: string }>((resolve) => slow.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    await new Promise<void>((resolve) => {
      slow.on('open', () => slow.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
      slow.on('message', (m) => {
        if (JSON.parse(m.toString()).type === 'connection_ack') {
          slow.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { alerts { id feature details lastSeenAt deployment { name } } }' } }));
          resolve();
        }
      });
    });
    await sleep(500);
    (slow as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const flood = 5000;
    let peak = before.rss as number;
    for (let seq = 0; seq < flood; seq++) {
      await a.ask({ op: 'publish', target: a.target, seq: 100_000 + seq });
      if (seq % 500 === 0) peak = Math.max(peak, (await a.ask({ op: 'memory' }, 'memory')).rss);
    }
    await sleep(1000);
    const afterFlood = await a.ask({ op: 'memory' }, 'memory');
    peak = Math.max(peak, afterFlood.rss);
    let nexts = 0;
    let ended = 'nothing';
    slow.on('message', (m) => {
      const msg = JSON.parse(m.toString());
      if (msg.type === 'next') nexts++;
      else if (msg.type === 'error') ended = `error: ${msg.payload?.[0]?.message ?? JSON.stringify(msg.payload)}`;
      else if (msg.type === 'complete') ended = ended === 'nothing' ? 'complete' : ended;
    });
    (slow as unknown as { _socket: { resume(): void } })._socket.resume();
    const outcome = await Promise.race([closed, sleep(3000).then(() => ({ code: 0, reason: 'socket still open' }))]);
    printTable('A consumer that stops reading (5,000 alerts published to it)', [
      {
        'server RSS before MB': (before.rss / 1e6).toFixed(1),
        'server RSS peak MB': (peak / 1e6).toFixed(1),
        'growth MB': ((peak - before.rss) / 1e6).toFixed(1),
        'WS_MAX_BUFFERED_BYTES': a.config.wsMaxBufferedBytes,
        'alerts it then received': nexts,
        'its subscription ended with': ended,
        socket: outcome.code ? `closed ${outcome.code} ${outcome.reason}` : outcome.reason,
      },
    ]);
    slow.terminate();
  } finally {
    for (const c of sockets) c.terminate();
    await b.stop();
    await a.stop();
  }
}
