import { Role } from '../access/role.entity';
import { DEFAULT_ROLES } from '../access/policy-rules';
import { audit } from '../audit/audit.service';
import { inTransaction, type AppServices } from '../core/context';
import { toGlobalId } from '../core/global-id';
import { systemContext } from './system-context';

/** Seeds the default roles that do not exist yet (never overwrites an admin's edits). */
export async function seedBaseline(app: AppServices): Promise<void> {
  const ctx = systemContext(app, {}, 'seed-baseline');
  await inTransaction(ctx, async (em) => {
    // Serialise concurrent starts on one database.
    await em.query('SELECT pg_advisory_xact_lock(7001)');
    const existing = new Set((await em.find(Role)).map((r) => r.name));
    for (const role of DEFAULT_ROLES) {
      if (existing.has(role.name)) continue;
      await em.insert(Role, { name: role.name, description: role.description, rules: role.rules, builtIn: true });
      await audit(ctx, { action: 'seedRole', subjectType: 'Role', subjectId: toGlobalId('Role', role.name), after: role });
    }
  });
}
