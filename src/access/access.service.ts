import { In } from 'typeorm';
import { audit } from '../core/audit/audit-chain';
import { assertCan } from '../core/authz';
import { inTransaction, type RequestContext } from '../core/context';
import { badInput, conflict, forbidden, notFound } from '../core/errors';
import { expectId, toGlobalId } from '../core/global-id';
import { parseTime } from '../core/validation';
import { validateRules } from '../core/ability';
import type { CreateApiKeyInput, CreatedApiKey, RevokeApiKeyInput, UpsertRoleInput } from './access.inputs';
import { ApiKey } from './api-key.entity';
import { mintApiKey } from './authenticate';
import type { PolicyRule } from '../core/subjects';
import { Role } from './role.entity';
import { Team } from './team.entity';
import { AccessReason } from './access.errors';
import { announceAccessChange } from './principal-cache';

/**
 * After a change of rights commits: cached principals are forgotten and long-lived subscriptions
 * check their caller again, on every instance.
 */
function accessChanged<T>(ctx: RequestContext, result: T): T {
  announceAccessChange(ctx.app);
  return result;
}

export async function upsertRole(ctx: RequestContext, input: UpsertRoleInput): Promise<Role> {
  return accessChanged(ctx, await inTransaction(ctx, async (em, ctx) => {
    const existing = await em.findOne(Role, { where: { name: input.name }, lock: { mode: 'pessimistic_write' } });
    assertCan(ctx, existing ? 'update' : 'create', 'Role', existing ?? { name: input.name, builtIn: false }, input.name);
    const problems = validateRules(input.rules);
    if (problems.length) throw badInput(`rules are invalid: ${problems.slice(0, 10).join('; ')}`, { field: 'rules', problems });
    const role = em.create(Role, {
      name: input.name,
      description: input.description ?? existing?.description ?? null,
      rules: input.rules as PolicyRule[],
      builtIn: existing?.builtIn ?? false,
    });
    await em.save(Role, role);
    await audit(ctx, {
      action: 'upsertRole',
      subjectType: 'Role',
      subjectId: toGlobalId('Role', role.name),
      before: existing ? { description: existing.description, rules: existing.rules } : null,
      after: { description: role.description, rules: role.rules },
    });
    return em.findOneByOrFail(Role, { name: role.name });
  }));
}

export async function deleteRole(ctx: RequestContext, name: string): Promise<boolean> {
  return accessChanged(ctx, await inTransaction(ctx, async (em, ctx) => {
    const existing = await em.findOne(Role, { where: { name }, lock: { mode: 'pessimistic_write' } });
    if (!existing) throw notFound(`Role "${name}"`);
    assertCan(ctx, 'delete', 'Role', existing, name);
    if (existing.builtIn) throw conflict(`Role "${name}" is built in; edit its rules instead`, { reason: AccessReason.BUILT_IN_ROLE });
    await em.delete(Role, { name });
    await audit(ctx, { action: 'deleteRole', subjectType: 'Role', subjectId: toGlobalId('Role', name), before: { rules: existing.rules } });
    return true;
  }));
}

export async function createApiKey(ctx: RequestContext, input: CreateApiKeyInput): Promise<CreatedApiKey> {
  return inTransaction(ctx, async (em, ctx) => {
    const minted = mintApiKey();
    const row = em.create(ApiKey, {
      id: minted.id,
      name: input.name,
      prefix: minted.prefix,
      secretHash: minted.secretHash,
      roles: [...new Set(input.roles)],
      teams: [...new Set(input.teams)],
      createdBy: ctx.principal!.id,
      expiresAt: parseTime(input.expiresAt, 'expiresAt'),
    });
    assertCan(ctx, 'create', 'ApiKey', row);
    // A key never carries more than its creator: roles and teams it holds itself (admins excepted).
    if (!ctx.ability.can('manage', 'all')) {
      const extraRoles = row.roles.filter((r) => !ctx.principal!.roles.includes(r));
      const extraTeams = row.teams.filter((t) => !ctx.principal!.teams.includes(t));
      if (extraRoles.length || extraTeams.length) {
        const err = forbidden(`A key cannot carry roles or teams its creator lacks (${[...extraRoles, ...extraTeams].join(', ')})`);
        Object.assign(err.details, { subjectType: 'ApiKey', subjectId: toGlobalId('ApiKey', row.id) });
        throw err;
      }
    }
    if (row.expiresAt && row.expiresAt.getTime() <= Date.now()) throw badInput('expiresAt is in the past', { field: 'expiresAt' });
    const roles = await em.find(Role, { where: { name: In(row.roles) } });
    const unknownRoles = row.roles.filter((r) => !roles.some((x) => x.name === r));
    if (unknownRoles.length) throw badInput(`unknown roles: ${unknownRoles.join(', ')}`, { field: 'roles' });
    const teams = await em.find(Team, { where: { name: In(row.teams) } });
    const unknownTeams = row.teams.filter((t) => !teams.some((x) => x.name === t));
    if (unknownTeams.length) throw badInput(`unknown teams: ${unknownTeams.join(', ')}`, { field: 'teams' });
    await em.insert(ApiKey, row);
    const { secretHash: _hidden, ...shown } = row;
    await audit(ctx, { action: 'createApiKey', subjectType: 'ApiKey', subjectId: toGlobalId('ApiKey', row.id), after: shown });
    return { key: minted.key, apiKey: row };
  });
}

export async function revokeApiKey(ctx: RequestContext, input: RevokeApiKeyInput): Promise<ApiKey> {
  return accessChanged(ctx, await inTransaction(ctx, async (em, ctx) => {
    const id = expectId(input.apiKey, 'ApiKey', 'apiKey');
    // Through the caller's read scope: a key it may not see is answered, and costs, like a missing one.
    const row = await ctx.loaders.scope(em.getRepository(ApiKey).createQueryBuilder('x').where('x.id = :id', { id }), 'ApiKey', 'x').setLock('pessimistic_write').getOne();
    if (!row) {
      const hidden = notFound(`ApiKey ${input.apiKey}`);
      Object.assign(hidden.details, { denied: true, subjectType: 'ApiKey', subjectId: toGlobalId('ApiKey', id) });
      throw hidden;
    }
    assertCan(ctx, 'update', 'ApiKey', row);
    if (row.revokedAt) throw conflict('The key is already revoked', { reason: AccessReason.ALREADY_REVOKED });
    row.revokedAt = new Date();
    await em.update(ApiKey, { id }, { revokedAt: row.revokedAt });
    await audit(ctx, { action: 'revokeApiKey', subjectType: 'ApiKey', subjectId: input.apiKey, before: { revokedAt: null }, after: { revokedAt: row.revokedAt } });
    return row;
  }));
}
