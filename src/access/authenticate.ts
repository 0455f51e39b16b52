import { createHash, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { DataSource } from 'typeorm';
import { AppError, ErrorCode, unauthenticated } from '../core/errors';
import { buildAbility, type AppAbility, type Principal } from '../core/ability';
import { accountablePersonSql } from './accountable';
import type { PolicyRule } from '../core/subjects';
import { AccessReason } from './access.errors';
import type { Config } from '../config';
import { OIDC_ALGORITHMS } from '../config';
import { oidcIssuers } from './oidc';

/** What bearer tokens are verified with: the HS256 secret, and the trusted OIDC issuers. */
export type TokenSettings = Pick<Config, 'jwtSecret' | 'oidc'>;

export interface Authentication {
  principal: Principal | null;
  ability: AppAbility;
  error: AppError | null;
  /** When the credential stops being valid on its own (a token's `exp`, a key's expiry); null when never. */
  expiresAt: Date | null;
}

const API_KEY = /^mgk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** A new API key: the full key (shown once), its id and the hash to store. */
export function mintApiKey(): { id: string; key: string; secretHash: string; prefix: string } {
  const idHex = randomBytes(16).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const id = `${idHex.slice(0, 8)}-${idHex.slice(8, 12)}-${idHex.slice(12, 16)}-${idHex.slice(16, 20)}-${idHex.slice(20)}`;
  const key = `mgk_${idHex}_${secret}`;
  return { id, key, secretHash: hashSecret(secret), prefix: key.slice(0, 12) };
}

/** Signs a bearer token the server accepts (used by the demo seed, the CLI and tests). */
export function signToken(secret: string, claims: { sub: string; roles: string[]; teams: string[] }, expiresInSeconds = 12 * 3600): string {
  return jwt.sign({ roles: claims.roles, teams: claims.teams }, secret, { algorithm: 'HS256', subject: claims.sub, expiresIn: expiresInSeconds });
}

interface RawPrincipal {
  id: string;
  kind: Principal['kind'];
  roles: string[];
  teams: string[];
  expiresAt: Date | null;
  onBehalfOf?: string;
}

/** Bounds on what a token may claim: the principal id, its roles and its teams travel into logs, audit rows and SQL. */
export const CLAIM_LIMITS = { maxLength: 200, maxEntries: 100 } as const;

// A claim is stored and logged as it is: no control characters, no malformed Unicode (PostgreSQL refuses NUL).
const claimString = (v: unknown, allowEmpty: boolean): v is string =>
  typeof v === 'string' &&
  (allowEmpty || v.length > 0) &&
  v.length <= CLAIM_LIMITS.maxLength &&
  !/[\u0000-\u001f\u007f]/.test(v) &&
  (v as string & { isWellFormed(): boolean }).isWellFormed();
const claimList = (v: unknown): v is string[] => Array.isArray(v) && v.length <= CLAIM_LIMITS.maxEntries && v.every((x) => claimString(x, true));

// jsonwebtoken turns a string secret into a key on every call, first trying (and failing) to read
// it as a PEM public key: that dominated a request's CPU time. One KeyObject per secret instead.
const secretKeys = new Map<string, KeyObject>();
function secretKey(secret: string): KeyObject {
  let key = secretKeys.get(secret);
  if (!key) {
    if (secretKeys.size > 16) secretKeys.clear();
    secretKeys.set(secret, (key = createSecretKey(Buffer.from(secret, 'utf8'))));
  }
  return key;
}

const tokenRefusal = (reason: AccessReason, message: string) => new AppError(ErrorCode.UNAUTHENTICATED, message, { reason });

/** Why jsonwebtoken refused an HS256 token, as a reason of the catalogue. */
function hs256Refusal(e: unknown): AppError {
  if (e instanceof jwt.TokenExpiredError) return tokenRefusal(AccessReason.TOKEN_EXPIRED, 'The token has expired');
  if (e instanceof jwt.NotBeforeError) return tokenRefusal(AccessReason.TOKEN_NOT_YET_VALID, 'The token is not valid yet (nbf)');
  const message = (e as Error)?.message ?? '';
  if (message === 'invalid signature') return tokenRefusal(AccessReason.TOKEN_SIGNATURE_INVALID, 'The token signature does not verify');
  if (message === 'invalid algorithm') return tokenRefusal(AccessReason.TOKEN_ALGORITHM_NOT_ALLOWED, 'Tokens without a trusted issuer must be signed with HS256');
  return tokenRefusal(AccessReason.TOKEN_MALFORMED, 'The token is not a well-formed signed JWT');
}

function fromJwt(token: string, secret: string): RawPrincipal {
  let claims: jwt.JwtPayload;
  try {
    const decoded = jwt.verify(token, secretKey(secret), { algorithms: ['HS256'] });
    if (typeof decoded === 'string') throw new Error('not a claims set');
    claims = decoded;
  } catch (e) {
    throw hs256Refusal(e);
  }
  if (typeof claims.exp !== 'number') throw claimsInvalid();
  return checkedClaims(claims.sub, claims.roles, claims.teams, new Date(claims.exp * 1000));
}

const claimsInvalid = () =>
  new AppError(
    ErrorCode.UNAUTHENTICATED,
    `Token must carry sub (1 to ${CLAIM_LIMITS.maxLength} printable characters), exp, and roles[] and teams[] of at most ${CLAIM_LIMITS.maxEntries} such names each`,
    { reason: AccessReason.TOKEN_CLAIMS_INVALID },
  );

/** A user principal from a verified token's id, roles and teams, once they are within {@link CLAIM_LIMITS}. */
function checkedClaims(id: unknown, roles: unknown, teams: unknown, expiresAt: Date): RawPrincipal {
  if (!claimString(id, false) || !claimList(roles) || !claimList(teams)) throw claimsInvalid();
  return { id, kind: 'user', roles, teams, expiresAt };
}

/** A JWT's header and claims, read without verifying them (to pick how to verify it); empty when unreadable. */
function peek(token: string): { alg?: unknown; iss?: unknown } {
  const [header, payload] = token.split('.', 3);
  try {
    const alg = (JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown })?.alg;
    const iss = (JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as { iss?: unknown })?.iss;
    return { alg, iss };
  } catch {
    return {};
  }
}

const KEY_PAIR_ALGORITHMS: ReadonlySet<unknown> = new Set(OIDC_ALGORITHMS);

/**
 * A bearer token: one whose `iss` is a trusted OIDC issuer is verified through that issuer's JWKS
 * (its algorithms only: never HS256 nor none), its claims mapped as configured; any other is an
 * HS256 token of AUTH_JWT_SECRET. A token signed with a key pair that names no trusted issuer is refused.
 */
async function fromBearer(token: string, settings: TokenSettings): Promise<RawPrincipal> {
  const { alg, iss } = peek(token);
  const issuer = typeof iss === 'string' && settings.oidc.issuers.length ? oidcIssuers(settings.oidc).get(iss) : undefined;
  if (issuer) {
    const claims = await issuer.verify(token, alg);
    return checkedClaims(claims.id, claims.roles, claims.teams, claims.expiresAt);
  }
  if (KEY_PAIR_ALGORITHMS.has(alg)) {
    throw tokenRefusal(AccessReason.TOKEN_ISSUER_UNKNOWN, typeof iss === 'string' ? 'The token was not issued by an issuer this server trusts' : 'A token signed with a key pair must name its issuer (iss)');
  }
  return fromJwt(token, settings.jwtSecret);
}

async function fromApiKey(key: string, db: DataSource): Promise<RawPrincipal> {
  const m = API_KEY.exec(key);
  if (!m) throw unauthenticated('Invalid API key');
  const idHex = m[1];
  const id = `${idHex.slice(0, 8)}-${idHex.slice(8, 12)}-${idHex.slice(12, 16)}-${idHex.slice(16, 20)}-${idHex.slice(20)}`;
  const rows: Array<{ secret_hash: string; roles: string[]; teams: string[]; revoked_at: Date | null; expires_at: Date | null; accountable: string }> = await db.query(
    `SELECT secret_hash, roles, teams, revoked_at, expires_at, ${accountablePersonSql('$1::uuid')} AS accountable FROM api_key WHERE id = $1`,
    [id],
  );
  const row = rows[0];
  const given = Buffer.from(hashSecret(m[2]), 'hex');
  const stored = Buffer.from(row?.secret_hash ?? '0'.repeat(64), 'hex');
  const matches = timingSafeEqual(given, stored) && !!row;
  if (!matches || row.revoked_at || (row.expires_at && row.expires_at.getTime() < Date.now())) {
    throw unauthenticated('Invalid, revoked or expired API key');
  }
  return { id: `apikey:${id}`, kind: 'service', roles: row.roles, teams: row.teams, expiresAt: row.expires_at, onBehalfOf: row.accountable };
}

/**
 * Establishes who is calling from an Authorization header value (`Bearer <JWT>`, HS256 or of a
 * trusted OIDC issuer, or `ApiKey <key>`). No header: anonymous. A refused credential: anonymous with `error` set, so that
 * every non-public field answers UNAUTHENTICATED with the reason. One SQL statement loads the
 * principal's roles and team ids.
 */
export async function authenticate(header: string | undefined, db: DataSource, tokens: TokenSettings): Promise<Authentication> {
  if (!header) return { principal: null, ability: buildAbility(null, []), error: null, expiresAt: null };
  let raw: RawPrincipal;
  try {
    const [scheme, value] = header.split(/\s+/, 2);
    if (/^bearer$/i.test(scheme) && value) raw = await fromBearer(value, tokens);
    else if (/^apikey$/i.test(scheme) && value) raw = await fromApiKey(value, db);
    else throw unauthenticated('Authorization must be "Bearer <token>" or "ApiKey <key>"');
  } catch (e) {
    if (e instanceof AppError) return { principal: null, ability: buildAbility(null, []), error: e, expiresAt: null };
    throw e;
  }
  const { expiresAt, ...identity } = raw;
  return { ...(await rightsOf(db, identity)), error: null, expiresAt };
}

/**
 * What a principal may do now: the rules of its roles as they are stored and the ids of its teams
 * that exist, read in one statement.
 */
export async function rightsOf(db: DataSource, identity: Omit<Principal, 'teamIds'>): Promise<{ principal: Principal; ability: AppAbility }> {
  const [row]: Array<{ rules: PolicyRule[][] | null; team_ids: string[] | null }> = await db.query(
    `SELECT (SELECT json_agg(r.rules ORDER BY r.name) FROM role r WHERE r.name = ANY($1)) AS rules,
            (SELECT array_agg(t.id ORDER BY t.name) FROM team t WHERE t.name = ANY($2)) AS team_ids`,
    [identity.roles, identity.teams],
  );
  const principal: Principal = { ...identity, teamIds: row.team_ids ?? [] };
  return { principal, ability: buildAbility(principal, row.rules ?? []) };
}
