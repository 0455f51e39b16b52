import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dataOf } from '../support/access';
import { startTestServer, workerEnv, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';

const WORKER = path.resolve(__dirname, '../../jobs/worker.js');
const PRELOAD = path.resolve(__dirname, '../support/loaded-modules.js');

// What only an API process may load: the HTTP and GraphQL servers and every resolver.
const API_ONLY = [
  /node_modules\/@apollo\/server\//,
  /node_modules\/@as-integrations\//,
  /node_modules\/express\//,
  /node_modules\/graphql-ws\//,
  /\.resolver\.js$/,
  /dist\/src\/app\/(server|schema|http-routes|websocket)\.js$/,
];

describe('a worker-only process (npm run worker)', () => {
  let t: TestServer;
  let worker: ChildProcess;
  const report = path.join(os.tmpdir(), `modelgov-worker-modules-${process.pid}.json`);

  before(async () => {
    // The API runs no workers: the job below can only be done by the separate worker process.
    t = await startTestServer({ env: { WORKERS_IN_PROCESS: 'false' } });
    worker = spawn(process.execPath, ['--require', PRELOAD, WORKER], {
      env: workerEnv(t, { LOADED_MODULES_REPORT: report }),
      stdio: 'ignore',
    });
  });

  after(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    await t?.stop();
    await rm(report, { force: true });
  });

  it('does queued work, stops on SIGTERM, and never loaded Apollo, Express, graphql-ws or a resolver', async () => {
    const auditor = t.token(['auditor'], [], 'worker-auditor');
    const { id } = dataOf(await t.gql(auditor, 'mutation { requestAuditExport { id } }'), 'export').requestAuditExport;
    await eventually('the worker to write the export', async () => {
      const r = dataOf(await t.gql(auditor, 'query ($id: ID!) { auditExport(id: $id) { status error } }', { id }), 'export');
      if (r.auditExport.status === 'FAILED') assert.fail(`export failed: ${r.auditExport.error}`);
      return r.auditExport.status === 'SUCCEEDED' ? true : undefined;
    });

    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    worker.kill('SIGTERM');
    assert.equal(await exited, 0, 'the worker exits cleanly on SIGTERM');

    const loaded: string[] = JSON.parse(await readFile(report, 'utf8'));
    // Positive controls: the report is the worker's, and it did load the queue and a processor.
    assert.ok(loaded.some((f) => /node_modules\/bullmq\//.test(f)), 'bullmq loaded');
    assert.ok(loaded.some((f) => f.endsWith(path.join('jobs', 'audit-export.processor.js'))), 'the export processor loaded');
    const apiOnly = loaded.filter((f) => API_ONLY.some((re) => re.test(f)));
    assert.deepEqual(apiOnly, [], 'modules only an API process needs');
  });
});
