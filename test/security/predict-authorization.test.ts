import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { contextFor } from '../../src/app/request-context';
import { AppError, ErrorCode } from '../../src/core/errors';
import type { Route } from '../../src/inference/inference.engine';
import { mayPredict, predict, type PredictRequest } from '../../src/inference/inference.service';
import { feedsFromRows } from '../../src/inference/tensors';
import { startTestServer, type TestServer } from '../support/harness';

/**
 * `predict` takes a route its transport already checked without checking it again: only a route
 * that passed the service's own `predict` check for the same request context. A route handed in any
 * other way (code that looked it up in the routing table itself, a route checked for another
 * caller) is checked in full, so another team's deployment stays out of reach.
 */
describe('a route handed to predict as already authorized', () => {
  let t: TestServer;
  let fraudProduction: Route;

  before(async () => {
    t = await startTestServer({ demo: true });
    fraudProduction = t.server.app.inference!.routes().find((r) => r.teamName === 'fraud' && r.environment === 'PRODUCTION')!;
    assert.ok(fraudProduction, 'the demo serves a fraud PRODUCTION deployment');
  });
  after(async () => {
    await t?.stop();
  });

  const request = (route: Route): PredictRequest => ({
    deploymentId: route.deploymentId,
    authorized: route,
    requestKey: null,
    source: 'open-inference',
    feeds: (spec, limits) => feedsFromRows(spec, { features: [[0.1, 0.2, 0.3, 0.4]] }, limits),
    loggedInputs: () => ({}),
  });
  const ctxOf = (token: string, requestId: string) => contextFor(t.server.app, `Bearer ${token}`, requestId);
  const logged = async (requestId: string) => {
    await t.server.app.inference!.log.flush(true);
    return (await t.sql(`SELECT count(*)::int AS n FROM prediction_log WHERE request_id = $1`, [requestId]))[0].n as number;
  };

  it('refuses another team’s deployment when the route was not checked for this caller, and runs nothing', async () => {
    const ctx = await ctxOf(t.token(['service'], ['vision'], 'svc-vision'), 'req-forged-route');
    await assert.rejects(predict(ctx, request(fraudProduction)), (e: unknown) => {
      assert.ok(e instanceof AppError, String(e));
      assert.equal(e.code, ErrorCode.NOT_FOUND, e.message);
      return true;
    });
    assert.equal(await logged('req-forged-route'), 0, 'nothing ran, nothing was logged');
  });

  it('does not take a grant given to another caller’s context', async () => {
    const fraud = await ctxOf(t.token(['service'], ['fraud'], 'svc-fraud'), 'req-fraud-grant');
    assert.equal(mayPredict(fraud, fraudProduction), true);
    const vision = await ctxOf(t.token(['service'], ['vision'], 'svc-vision'), 'req-borrowed-grant');
    await assert.rejects(predict(vision, request(fraudProduction)), (e: unknown) => e instanceof AppError && e.code === ErrorCode.NOT_FOUND);
    assert.equal(await logged('req-borrowed-grant'), 0);
  });

  it('answers the team’s own caller, with the route checked here or in full', async () => {
    const checked = await ctxOf(t.token(['service'], ['fraud'], 'svc-fraud'), 'req-checked');
    assert.equal(mayPredict(checked, fraudProduction), true);
    const a = await predict(checked, request(fraudProduction));
    assert.equal(a.rows, 1);
    const unchecked = await ctxOf(t.token(['service'], ['fraud'], 'svc-fraud'), 'req-unchecked');
    const b = await predict(unchecked, request(fraudProduction));
    assert.equal(b.rows, 1);
    assert.deepEqual(b.outputs.map((o) => Array.from(o.data as Float32Array)), a.outputs.map((o) => Array.from(o.data as Float32Array)));
    assert.equal(await logged('req-checked'), 1);
    assert.equal(await logged('req-unchecked'), 1);
  });

  it('refuses a reader who may not predict with FORBIDDEN, even with the route handed in', async () => {
    const viewer = await ctxOf(t.token(['viewer'], ['fraud'], 'viewer-fraud'), 'req-viewer');
    assert.equal(mayPredict(viewer, fraudProduction), false);
    await assert.rejects(predict(viewer, request(fraudProduction)), (e: unknown) => e instanceof AppError && e.code === ErrorCode.FORBIDDEN);
    assert.equal(await logged('req-viewer'), 0);
  });
});
