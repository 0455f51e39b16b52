import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { buildSchema, Query, Resolver } from 'type-graphql';
import { rootFieldPolicies } from '../../src/core/policy';
import { emittedSchema } from '../../src/cli';
import { buildAppSchema } from '../../src/app/schema';
import { repoRoot } from '../support/repo';

// A diff in this snapshot changes who can reach an endpoint: review it as a permission change.
// After a deliberate change, regenerate with UPDATE_SNAPSHOTS=1 npm test.
const SNAPSHOT = path.join(repoRoot(), 'test/access/root-field-policies.snapshot.json');

describe('root field policies', () => {
  it('every Query, Mutation and Subscription field declares its policy, as recorded in the snapshot', async () => {
    const current = rootFieldPolicies(await buildAppSchema());
    const text = JSON.stringify(current, null, 2) + '\n';
    if (process.env.UPDATE_SNAPSHOTS === '1') writeFileSync(SNAPSHOT, text);
    assert.equal(text, readFileSync(SNAPSHOT, 'utf8'));
    assert.ok(current.some((p) => p.field === 'Query.viewer' && p.policy.startsWith('authenticated')));
    // The error catalogue describes the API, not its data; every other field needs a credential.
    assert.deepEqual(current.filter((p) => p.policy.startsWith('public')).map((p) => p.field), ['Query.errorReasons'], 'only the error catalogue is public');
  });

  it('the committed schema/schema.graphql is the schema the server builds', async () => {
    const committed = readFileSync(path.join(repoRoot(), 'schema/schema.graphql'), 'utf8');
    assert.equal(committed, await emittedSchema(), 'schema/schema.graphql is stale: run npm run schema');
  });

  it('refuses a schema with a root field that declares no policy', async () => {
    @Resolver()
    class Unguarded {
      @Query(() => String)
      leak(): string {
        return 'secret';
      }
    }
    const schema = await buildSchema({ resolvers: [Unguarded] });
    assert.throws(() => rootFieldPolicies(schema), /refusing to start: root fields without a policy: Query\.leak/);
  });
});
