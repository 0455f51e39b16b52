import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 to `port` that can be cut (every connection dropped, new ones refused)
 * and restored on the same port: a service going away and coming back, as its clients see it.
 */
export async function tcpProxy(port: number) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let listenPort = 0;
  const start = () =>
    new Promise<void>((resolve) => {
      server = net.createServer((client) => {
        const upstream = net.connect(port, '127.0.0.1');
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => undefined);
        }
        client.pipe(upstream).pipe(client);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      server.listen(listenPort, '127.0.0.1', () => {
        listenPort = (server!.address() as net.AddressInfo).port;
        resolve();
      });
    });
  await start();
  return {
    get port() {
      return listenPort;
    },
    /** Drops every connection and refuses new ones. */
    async cut(): Promise<void> {
      const s = server!;
      server = null;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((r) => s.close(() => r()));
    },
    /** Listens again on the same port. */
    restore: start,
    async close(): Promise<void> {
      if (server) await this.cut();
    },
  };
}
