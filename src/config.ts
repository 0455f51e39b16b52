import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/** Raised when the environment does not describe a runnable server; the message names the variable. */
export class ConfigError extends Error {}

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: int(0, 65535).default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  // libpq's variables for the local server, as psql reads them: where an unset DATABASE_URL points.
  PGHOST: z.string().regex(/^([\w.:-]+|\/.*)$/, 'a host name, an IP address or a socket directory').optional(),
  PGPORT: int(1, 65535).optional(),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// URL').default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z.string().regex(/^[\w:.-]{1,64}$/, 'letters, digits, ":", ".", "-" only').default('modelgov:'),
  AUTH_JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  OIDC_ISSUERS: z.string().optional(),
  OIDC_CLOCK_SKEW_SECONDS: int(0, 600).default(60),
  OIDC_JWKS_CACHE_SECONDS: int(1, 86_400).default(600),
  OIDC_JWKS_COOLDOWN_SECONDS: int(0, 3600).default(30),
  OIDC_JWKS_TIMEOUT_MS: int(100, 60_000).default(5000),
  SEED_DEMO: bool.optional(),
  DATA_DIR: z.string().min(1).default('.modelgov'),
  SECRETS_DIR: z.string().min(1).optional(),
  ARTIFACT_ROOT: z.string().min(1).optional(),
  ARTIFACT_MAX_BYTES: int(1024, 8 * 1024 ** 3).default(256 * 1024 * 1024),
  ARTIFACT_PARSE_HEAP_MB: int(16, 16_384).default(512),
  ARTIFACT_PARSE_TIMEOUT_MS: int(100, 600_000).default(30_000),
  BODY_LIMIT_BYTES: int(1024, 64 * 1024 ** 2).default(1024 * 1024),
  MAX_QUERY_DEPTH: int(2, 100).default(12),
  MAX_QUERY_COST: int(10, 100_000_000).default(250_000),
  MAX_QUERY_ALIASES: int(1, 10_000).default(30),
  MAX_LINEAGE_DEPTH: int(1, 100).default(20),
  MAX_LINEAGE_NODES: int(10, 1_000_000).default(10_000),
  WORKERS_IN_PROCESS: bool.optional(),
  WORKER_CONCURRENCY: int(1, 64).default(1),
  WORKER_LOCK_MS: int(1000, 3_600_000).default(30_000),
  TRAINING_TIMEOUT_MS: int(1000, 7 * 24 * 3600 * 1000).default(30 * 60 * 1000),
  // Where a trainer's own child programs are looked up (the only variable of this process a trainer gets).
  PATH: z.string().min(1).default('/usr/local/bin:/usr/bin:/bin'),
  TRAINING_MAX_OUTPUT_BYTES: int(1024, 1024 ** 3).default(10 * 1024 * 1024),
  TRAINING_ATTEMPTS: int(1, 20).default(3),
  TRAINER_REPOSITORIES: z.string().optional(),
  DATASET_MAX_BYTES: int(1024, 64 * 1024 ** 3).default(1024 ** 3),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  INFERENCE_ENABLED: bool.optional(),
  INFERENCE_PROVIDERS: z
    .string()
    .regex(/^(cuda|tensorrt|cpu)(,(cuda|tensorrt|cpu))*$/, 'a comma-separated list of cuda, tensorrt, cpu')
    .default('cuda,cpu'),
  INFERENCE_THREADS: int(1, 256).optional(),
  INFERENCE_PRODUCTION_THREADS: int(1, 256).optional(),
  INFERENCE_INTRA_OP_THREADS: int(1, 256).default(1),
  INFERENCE_MAX_BATCH_ROWS: int(1, 65_536).default(256),
  INFERENCE_BATCH_WAIT_US: int(0, 1_000_000).default(0),
  INFERENCE_SPLIT_MIN_MS: int(0, 60_000).default(1),
  INFERENCE_TIMEOUT_MS: int(1, 600_000).default(1000),
  INFERENCE_MAX_ROWS: int(1, 1_000_000).default(1024),
  INFERENCE_MAX_ELEMENTS: int(1, 100_000_000).default(1_000_000),
  INFERENCE_ALLOW_NON_FINITE: bool.optional(),
  INFERENCE_RATE_LIMIT_PER_SECOND: int(1, 10_000_000).default(1000),
  INFERENCE_RATE_LIMIT_BURST: int(1, 10_000_000).optional(),
  INFERENCE_LOG_INPUTS_UP_TO: z.enum(['NONE', 'PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED']).default('CONFIDENTIAL'),
  INFERENCE_RECONCILE_MS: int(100, 3_600_000).default(15_000),
  INFERENCE_BREAKER_FAILURES: int(0, 1_000_000).default(5),
  INFERENCE_BREAKER_COOLDOWN_MS: int(1, 3_600_000).default(10_000),
  INFERENCE_RUN_BUDGET_MS: int(1, 600_000).optional(),
  INFERENCE_RUN_BUDGET_PER_ROW_US: int(0, 10_000_000).default(1000),
  INFERENCE_RUN_STUCK_MS: int(1, 3_600_000).default(30_000),
  INFERENCE_BUDGET_WINDOW_MS: int(1, 7 * 24 * 3600 * 1000).default(600_000),
  INFERENCE_BUDGET_OVERRUNS: int(0, 1_000_000).default(3),
  INFERENCE_BUDGET_COOLDOWN_MS: int(1, 7 * 24 * 3600 * 1000).default(300_000),
  PREDICTION_LOG_BATCH: int(1, 100_000).default(1000),
  PREDICTION_LOG_FLUSH_MS: int(10, 60_000).default(250),
  PREDICTION_LOG_MAX_BUFFERED: int(1, 10_000_000).default(20_000),
  SERVING_WINDOW_SECONDS: int(1, 3600).default(10),
  MONITOR_WINDOW_SECONDS: int(1, 7 * 24 * 3600).default(300),
  MONITOR_EVERY_SECONDS: int(1, 24 * 3600).default(60),
  MONITOR_MIN_REQUESTS: int(1, 1_000_000).default(20),
  MONITOR_EXACT_DRIFT_ROWS: int(0, 10_000_000).default(10_000),
  ALERT_COOLDOWN_SECONDS: int(0, 30 * 24 * 3600).default(900),
  LOOP_TICK_SECONDS: int(1, 3600).default(5),
  WS_MAX_BUFFERED_BYTES: int(1024, 1024 ** 3).default(1024 * 1024),
  PRINCIPAL_CACHE_TTL_MS: int(0, 3_600_000).default(30_000),
  PRINCIPAL_CACHE_MAX_ENTRIES: int(1, 10_000_000).default(10_000),
  AUDIT_DENIAL_RATE_PER_SECOND: int(1, 1_000_000).default(2),
  AUDIT_DENIAL_BURST: int(1, 1_000_000).default(60),
  AUDIT_DENIAL_FOLD_SECONDS: int(1, 3600).default(60),
  AUDIT_SIGNING_KEY: z.string().min(1).optional(),
  AUDIT_RETENTION_DAYS: z
    .string()
    .regex(/^\d+$/, 'must be a whole number of days')
    .transform(Number)
    .pipe(z.number().int().min(183, 'must be at least 183 days (audit logs are kept six months or more)').max(36_500))
    .default(400),
  AUDIT_EXPORT_PAGE_ROWS: int(100, 100_000).default(5000),
  AUDIT_EXPORT_LINK_TTL_SECONDS: int(10, 7 * 24 * 3600).default(3600),
  AUDIT_ANCHOR_FILE: z.string().min(1).optional(),
  AUDIT_ANCHOR_EVERY_SECONDS: int(1, 24 * 3600).default(300),
  NOTIFY_SECRET_KEY: z.string().min(1).optional(),
  NOTIFY_ALLOWED_HOSTS: z
    .string()
    .regex(/^[\w.:\[\]-]+(,[\w.:\[\]-]+)*$/, 'a comma-separated list of host names or IP addresses')
    .optional(),
  NOTIFY_CONNECT_TIMEOUT_MS: int(100, 120_000).default(5000),
  NOTIFY_TIMEOUT_MS: int(100, 300_000).default(10_000),
  NOTIFY_MAX_ATTEMPTS: int(1, 50).default(8),
  NOTIFY_RETRY_BASE_MS: int(10, 3_600_000).default(2000),
  NOTIFY_RETRY_MAX_MS: int(10, 86_400_000).default(600_000),
  NOTIFY_SWEEP_SECONDS: int(1, 3600).default(60),
  NOTIFY_CONCURRENCY: int(1, 256).default(32),
  NOTIFY_RETENTION_DAYS: int(1, 3650).default(90),
  SMTP_URL: z
    .string()
    .url()
    .refine((u) => /^smtps?:\/\/[^/?#]+\/?$/i.test(u), 'must be smtp://[user:password@]host[:port] or smtps://…, without a path or query')
    .optional(),
  SMTP_FROM: z
    .string()
    .max(320)
    .regex(/^(?:[^<>\r\n]*<[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/, 'an address, or a name and an address in <…>')
    .optional(),
  SMTP_INSECURE_LOCALHOST: bool.optional(),
});

export interface Config {
  env: 'development' | 'production' | 'test';
  isProduction: boolean;
  port: number;
  host: string;
  /**
   * DATABASE_URL, or when it is unset the local server: `postgres://$PGHOST:$PGPORT/modelgov`
   * (libpq's variables, default localhost:5432).
   */
  databaseUrl: string;
  /**
   * Where an embedded PostgreSQL keeps its cluster (`<DATA_DIR>/postgres`): set when DATABASE_URL
   * is unset outside production, and then used when nothing answers at `databaseUrl`. Null when
   * DATABASE_URL is set, and in production (where the database is always named).
   */
  embeddedPostgresDir: string | null;
  redisUrl: string;
  redisPrefix: string;
  /** Secret. Signs and verifies bearer tokens (HS256). */
  jwtSecret: string;
  /** Identity providers whose RS256/ES256 tokens are accepted, verified through their JWKS. */
  oidc: OidcConfig;
  seedDemo: boolean;
  dataDir: string;
  /**
   * Where development secrets (a generated JWT secret and audit signing key) are kept: outside
   * DATA_DIR and the working directory, so that nothing that reads files relative to either reaches them.
   */
  secretsDir: string;
  artifactRoot: string;
  artifactMaxBytes: number;
  /** Heap of the worker that parses an uploaded model; a file that needs more is refused. */
  artifactParseHeapMb: number;
  artifactParseTimeoutMs: number;
  bodyLimitBytes: number;
  maxQueryDepth: number;
  maxQueryCost: number;
  maxQueryAliases: number;
  maxLineageDepth: number;
  /** A lineage answer stops (truncated: true) at this many nodes, and at five times as many edges. */
  maxLineageNodes: number;
  logLevel: string;
  shutdownGraceMs: number;
  /** Run the queue workers inside the API process (default); `npm run worker` runs them alone. */
  workersInProcess: boolean;
  workerConcurrency: number;
  /** A job whose worker stopped renewing its lock this long ago is handed to another worker. */
  workerLockMs: number;
  trainingTimeoutMs: number;
  /** `PATH` given to trainer processes (their environment is otherwise empty but for what the run sets). */
  trainerPath: string;
  trainingMaxOutputBytes: number;
  trainingAttempts: number;
  /** Repository URL → local directory holding its trainers; entrypoints resolve inside it. */
  trainerRepositories: Record<string, string>;
  datasetMaxBytes: number;
  /** Secret. Ed25519 private key (PKCS#8 PEM) that signs audit export manifests and retention checkpoints. */
  auditSigningKeyPem: string;
  /** Audit events older than this are rolled into a signed checkpoint by the retention job (never below 183). */
  auditRetentionDays: number;
  /** Rows read from PostgreSQL per page while an export streams (memory is bounded by two pages: one written, the next read). */
  auditExportPageRows: number;
  /** Lifetime of the signed download link of a finished export file. */
  auditExportLinkTtlSeconds: number;
  /** Append-only NDJSON file that signed anchors of the audit chain head are published to; keep it off the database host. */
  auditAnchorFile: string;
  /** How often the worker publishes an anchor (only when the chain head has moved). */
  auditAnchorEverySeconds: number;
  notify: NotifyConfig;
  inference: InferenceConfig;
  monitoring: {
    windowSeconds: number;
    everySeconds: number;
    minRequests: number;
    cooldownSeconds: number;
    /** A served version's window of at most this many logged rows is judged exactly from the raw log; larger ones (and shadows) from the rollups. */
    exactDriftRows: number;
  };
  /** How often workers move in-flight iterations of the loop on (each step also moves it on at once). */
  loopTickSeconds: number;
  /** A WebSocket client with more than this waiting to be sent is disconnected (a slow consumer). */
  wsMaxBufferedBytes: number;
  /**
   * Principals resolved per credential, kept so that a request needs no SQL to know its caller:
   * at most `maxEntries` (least recently used go first), each trusted at most `ttlMs` (0: no
   * cache). Access changes clear every instance's cache at once; `ttlMs` bounds staleness when an
   * access-change event is lost (Redis away).
   */
  principalCache: { ttlMs: number; maxEntries: number };
  /** Refused attempts: per-principal rate (then RATE_LIMITED) and the window identical ones are folded in. */
  auditDenials: { perSecond: number; burst: number; foldSeconds: number };
}

/** Bearer tokens of OpenID Connect issuers (see the README's "Authentication" section). */
export interface OidcConfig {
  /** Trusted issuers; a token is routed to the one its `iss` names. Empty: HS256 tokens only. */
  issuers: OidcIssuerConfig[];
  /** Leeway on `exp` and `nbf`: a token is accepted this long after its expiry, and this long before it becomes valid. */
  clockSkewSeconds: number;
  /** A fetched key set is used this long, then fetched again on the next token. */
  jwksCacheSeconds: number;
  /** A token whose `kid` is not in the key set fetches it again (a rotated key), at most once in this long. */
  jwksCooldownSeconds: number;
  /** A JWKS or discovery fetch taking longer fails (the token is refused, `TOKEN_ISSUER_UNREACHABLE`). */
  jwksTimeoutMs: number;
  /** Key sets are fetched over https only (production). */
  httpsOnly: boolean;
}

/** One trusted issuer and how its tokens' claims become a principal. */
export interface OidcIssuerConfig {
  /** Compared exactly with the token's `iss`. */
  issuer: string;
  /** The issuer's key set; null: read from `${issuer}/.well-known/openid-configuration` (`jwks_uri`). */
  jwksUri: string | null;
  /** The token's `aud` must hold one of these. */
  audience: string[];
  /** Signature algorithms accepted from this issuer (never HS256 nor none). */
  algorithms: string[];
  /** The claim holding the principal id (default `sub`), and what is put before it (to keep issuers apart). */
  subjectClaim: string;
  subjectPrefix: string;
  /** The claim holding role names (a list, or one string); with a prefix, only entries with it are roles, the prefix removed. */
  rolesClaim: string;
  rolePrefix: string;
  /** The claim holding team names, read as the roles are. */
  teamsClaim: string;
  teamPrefix: string;
}

/** How notifications are sent (see the README's "On call" section). */
export interface NotifyConfig {
  /** Secret. AES-256 key that encrypts channel secrets (webhook signing secrets, PagerDuty routing keys) at rest. */
  secretKey: Buffer;
  /**
   * Host names and IP addresses (lower case, IPv6 without brackets) that may be sent to although
   * they are, or resolve to, loopback, private, link-local or other internal addresses.
   */
  allowedHosts: ReadonlySet<string>;
  connectTimeoutMs: number;
  /** The whole delivery, from the name lookup to the last byte of the (capped) response. */
  timeoutMs: number;
  /** Where EMAIL channels' messages are submitted; null when SMTP_URL is unset (EMAIL channels are then refused). */
  smtp: SmtpConfig | null;
  /** A delivery is tried at most this many times, then dead-lettered (and an alert opened). */
  maxAttempts: number;
  /**
   * Retries wait `retryBaseMs × 2^(attempt − 1)`, at most `retryMaxMs`, with full jitter (a random
   * part of it, at least half); a receiver's `Retry-After` (429, 503) is honoured up to `retryMaxMs`.
   */
  retryBaseMs: number;
  retryMaxMs: number;
  /** How often a worker looks for deliveries whose job was lost and digests that are due (a safety net). */
  sweepSeconds: number;
  /** Notification jobs (deliveries, mostly waiting on receivers) each worker process runs at once. */
  workerConcurrency: number;
  /** Notifications and their finished deliveries are kept this long, then removed by the sweep. */
  retentionDays: number;
}

/** The SMTP server EMAIL channels send through (see the README's "On call" section). */
export interface SmtpConfig {
  /** Secret (it may carry the submission credentials). `smtp://` (STARTTLS required) or `smtps://` (TLS from the start). */
  url: string;
  /** The From of every message: an address, or `Name <address>`. */
  from: string;
  /**
   * SMTP_INSECURE_LOCALHOST: on a loopback SMTP host only, STARTTLS is not required and a
   * certificate is not verified (a local relay or a test server); refused for any other host.
   */
  insecureLocalhost: boolean;
}

/** The embedded inference engine's settings (see the README's inference section). */
export interface InferenceConfig {
  /** Serve predictions from this process (API processes; never the worker entry point). */
  enabled: boolean;
  /** Execution providers to try in order; a provider whose library is missing falls back to the next. */
  providers: string[];
  /** Threads of the pool that serves everything but PRODUCTION traffic (staging, development, shadows). */
  threads: number;
  /** Threads of the pool that serves only versions routed by PRODUCTION deployments (traffic and fallback). */
  productionThreads: number;
  intraOpNumThreads: number;
  maxBatchRows: number;
  batchWaitUs: number;
  /** A run expected to take at least twice this is split across idle threads, each part expected to take at least this (0: never split). */
  splitMinMs: number;
  timeoutMs: number;
  maxRows: number;
  maxElements: number;
  allowNonFinite: boolean;
  rateLimitPerSecond: number;
  rateLimitBurst: number;
  /** Inputs are logged as sent when the model's training data is classified at most this; otherwise only their hash. */
  logInputsUpTo: 'NONE' | 'PUBLIC' | 'INTERNAL' | 'CONFIDENTIAL' | 'RESTRICTED';
  reconcileMs: number;
  /** Consecutive failures (errors or timeouts) after which a version is skipped for `breakerCooldownMs` (0: never). */
  breakerFailures: number;
  breakerCooldownMs: number;
  /** How long one run may hold a thread (plus `runBudgetPerRowMs` per row); past it the run is abandoned and its thread replaced. */
  runBudgetMs: number;
  runBudgetPerRowMs: number;
  /** An abandoned run still running this long after it started is stuck: its version is unloaded from that pool at once. */
  runStuckMs: number;
  /** Runs over budget within `budgetWindowMs`, in one pool, after which a version is unloaded from that pool for `budgetCooldownMs` (0: never). */
  budgetOverruns: number;
  budgetWindowMs: number;
  budgetCooldownMs: number;
  logBatch: number;
  logFlushMs: number;
  logMaxBuffered: number;
  windowSeconds: number;
}

/** The repository URL under which the trainers shipped with the server are registered. */
export const BUILTIN_TRAINERS_REPOSITORY = 'builtin://modelgov/trainers';

/** Names of the variables whose values must never be logged or echoed. */
export const SECRET_VARIABLES = ['AUTH_JWT_SECRET', 'AUDIT_SIGNING_KEY', 'NOTIFY_SECRET_KEY', 'DATABASE_URL', 'REDIS_URL', 'SMTP_URL'] as const;

/**
 * Reads and validates the environment once. Throws {@link ConfigError} naming the first bad
 * variable. In development an unset AUTH_JWT_SECRET, AUDIT_SIGNING_KEY or NOTIFY_SECRET_KEY is generated once and kept
 * in SECRETS_DIR (by default `$XDG_CONFIG_HOME/modelgov/secrets/<hash of DATA_DIR>`, or under
 * `~/.config` when XDG_CONFIG_HOME is unset); one kept under DATA_DIR by an earlier release is
 * moved there.
 */
/** libpq's rule, which node-postgres lacks: a URL without a user connects as $PGUSER when it is set. */
function withPgUser(url: string, pgUser: string | undefined): string {
  if (!pgUser) return url;
  const u = new URL(url);
  if (!u.username) u.username = encodeURIComponent(pgUser);
  return u.toString();
}

/** The local server's modelgov database, found as libpq finds it: PGHOST (a host, or a socket directory) and PGPORT. */
function localDatabaseUrl(host = 'localhost', port = 5432): string {
  if (host.startsWith('/')) return `postgres://localhost:${port}/modelgov?host=${encodeURIComponent(host)}`;
  const h = host.includes(':') ? `[${host}]` : host;
  return `postgres://${h}:${port}/modelgov`;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue.path[0]);
    const shown = (SECRET_VARIABLES as readonly string[]).includes(name) ? '' : ` (got ${JSON.stringify(raw[name])})`;
    throw new ConfigError(`invalid ${name}: ${issue.message}${shown}`);
  }
  const c = parsed.data;
  const isProduction = c.NODE_ENV === 'production';
  const dataDir = path.resolve(c.DATA_DIR);
  const secretsDir = path.resolve(c.SECRETS_DIR ?? defaultSecretsDir(env, dataDir));
  let jwtSecret = c.AUTH_JWT_SECRET;
  if (!jwtSecret) {
    if (isProduction) throw new ConfigError('missing AUTH_JWT_SECRET: required when NODE_ENV=production');
    jwtSecret = developmentSecret(secretsDir, dataDir);
  }
  let auditSigningKeyPem = c.AUDIT_SIGNING_KEY;
  if (!auditSigningKeyPem) {
    if (isProduction) throw new ConfigError('missing AUDIT_SIGNING_KEY: required when NODE_ENV=production');
    auditSigningKeyPem = developmentSigningKey(secretsDir, dataDir);
  }
  auditSigningKeyPem = ed25519PrivateKey(auditSigningKeyPem);
  let notifySecretKey = c.NOTIFY_SECRET_KEY;
  if (!notifySecretKey) {
    if (isProduction) throw new ConfigError('missing NOTIFY_SECRET_KEY: required when NODE_ENV=production');
    notifySecretKey = keptSecret(secretsDir, 'notify-secret-key', dataDir, () => randomBytes(32).toString('base64'));
  }
  return {
    env: c.NODE_ENV,
    isProduction,
    port: c.PORT,
    host: c.HOST,
    databaseUrl: withPgUser(c.DATABASE_URL ?? localDatabaseUrl(c.PGHOST, c.PGPORT), env.PGUSER),
    embeddedPostgresDir: c.DATABASE_URL || isProduction ? null : path.join(dataDir, 'postgres'),
    redisUrl: c.REDIS_URL,
    redisPrefix: c.REDIS_PREFIX,
    jwtSecret,
    oidc: {
      issuers: oidcIssuers(c.OIDC_ISSUERS, isProduction),
      clockSkewSeconds: c.OIDC_CLOCK_SKEW_SECONDS,
      jwksCacheSeconds: c.OIDC_JWKS_CACHE_SECONDS,
      jwksCooldownSeconds: c.OIDC_JWKS_COOLDOWN_SECONDS,
      jwksTimeoutMs: c.OIDC_JWKS_TIMEOUT_MS,
      httpsOnly: isProduction,
    },
    seedDemo: c.SEED_DEMO ?? c.NODE_ENV === 'development',
    dataDir,
    secretsDir,
    artifactRoot: path.resolve(c.ARTIFACT_ROOT ?? path.join(dataDir, 'artifacts')),
    artifactMaxBytes: c.ARTIFACT_MAX_BYTES,
    artifactParseHeapMb: c.ARTIFACT_PARSE_HEAP_MB,
    artifactParseTimeoutMs: c.ARTIFACT_PARSE_TIMEOUT_MS,
    bodyLimitBytes: c.BODY_LIMIT_BYTES,
    maxQueryDepth: c.MAX_QUERY_DEPTH,
    maxQueryCost: c.MAX_QUERY_COST,
    maxQueryAliases: c.MAX_QUERY_ALIASES,
    maxLineageDepth: c.MAX_LINEAGE_DEPTH,
    maxLineageNodes: c.MAX_LINEAGE_NODES,
    logLevel: c.LOG_LEVEL,
    shutdownGraceMs: c.SHUTDOWN_GRACE_MS,
    workersInProcess: c.WORKERS_IN_PROCESS ?? true,
    workerConcurrency: c.WORKER_CONCURRENCY,
    workerLockMs: c.WORKER_LOCK_MS,
    trainingTimeoutMs: c.TRAINING_TIMEOUT_MS,
    trainerPath: c.PATH,
    trainingMaxOutputBytes: c.TRAINING_MAX_OUTPUT_BYTES,
    trainingAttempts: c.TRAINING_ATTEMPTS,
    trainerRepositories: trainerRepositories(c.TRAINER_REPOSITORIES),
    datasetMaxBytes: c.DATASET_MAX_BYTES,
    inference: {
      enabled: c.INFERENCE_ENABLED ?? true,
      providers: [...new Set(c.INFERENCE_PROVIDERS.split(','))],
      // The cores are split between the two pools, production taking the odd one.
      threads: c.INFERENCE_THREADS ?? Math.max(1, Math.floor(availableParallelism() / 2)),
      productionThreads: c.INFERENCE_PRODUCTION_THREADS ?? Math.max(1, Math.ceil(availableParallelism() / 2)),
      intraOpNumThreads: c.INFERENCE_INTRA_OP_THREADS,
      maxBatchRows: c.INFERENCE_MAX_BATCH_ROWS,
      batchWaitUs: c.INFERENCE_BATCH_WAIT_US,
      splitMinMs: c.INFERENCE_SPLIT_MIN_MS,
      timeoutMs: c.INFERENCE_TIMEOUT_MS,
      maxRows: c.INFERENCE_MAX_ROWS,
      maxElements: c.INFERENCE_MAX_ELEMENTS,
      allowNonFinite: c.INFERENCE_ALLOW_NON_FINITE ?? false,
      rateLimitPerSecond: c.INFERENCE_RATE_LIMIT_PER_SECOND,
      rateLimitBurst: c.INFERENCE_RATE_LIMIT_BURST ?? c.INFERENCE_RATE_LIMIT_PER_SECOND * 2,
      logInputsUpTo: c.INFERENCE_LOG_INPUTS_UP_TO,
      reconcileMs: c.INFERENCE_RECONCILE_MS,
      breakerFailures: c.INFERENCE_BREAKER_FAILURES,
      breakerCooldownMs: c.INFERENCE_BREAKER_COOLDOWN_MS,
      runBudgetMs: c.INFERENCE_RUN_BUDGET_MS ?? c.INFERENCE_TIMEOUT_MS,
      runBudgetPerRowMs: c.INFERENCE_RUN_BUDGET_PER_ROW_US / 1000,
      runStuckMs: c.INFERENCE_RUN_STUCK_MS,
      budgetOverruns: c.INFERENCE_BUDGET_OVERRUNS,
      budgetWindowMs: c.INFERENCE_BUDGET_WINDOW_MS,
      budgetCooldownMs: c.INFERENCE_BUDGET_COOLDOWN_MS,
      logBatch: c.PREDICTION_LOG_BATCH,
      logFlushMs: c.PREDICTION_LOG_FLUSH_MS,
      logMaxBuffered: c.PREDICTION_LOG_MAX_BUFFERED,
      windowSeconds: c.SERVING_WINDOW_SECONDS,
    },
    monitoring: {
      windowSeconds: c.MONITOR_WINDOW_SECONDS,
      everySeconds: c.MONITOR_EVERY_SECONDS,
      minRequests: c.MONITOR_MIN_REQUESTS,
      cooldownSeconds: c.ALERT_COOLDOWN_SECONDS,
      exactDriftRows: c.MONITOR_EXACT_DRIFT_ROWS,
    },
    loopTickSeconds: c.LOOP_TICK_SECONDS,
    wsMaxBufferedBytes: c.WS_MAX_BUFFERED_BYTES,
    principalCache: { ttlMs: c.PRINCIPAL_CACHE_TTL_MS, maxEntries: c.PRINCIPAL_CACHE_MAX_ENTRIES },
    auditDenials: { perSecond: c.AUDIT_DENIAL_RATE_PER_SECOND, burst: c.AUDIT_DENIAL_BURST, foldSeconds: c.AUDIT_DENIAL_FOLD_SECONDS },
    auditSigningKeyPem,
    auditRetentionDays: c.AUDIT_RETENTION_DAYS,
    auditExportPageRows: c.AUDIT_EXPORT_PAGE_ROWS,
    auditExportLinkTtlSeconds: c.AUDIT_EXPORT_LINK_TTL_SECONDS,
    auditAnchorFile: path.resolve(c.AUDIT_ANCHOR_FILE ?? path.join(dataDir, 'audit-anchors.ndjson')),
    auditAnchorEverySeconds: c.AUDIT_ANCHOR_EVERY_SECONDS,
    notify: {
      secretKey: aes256Key(notifySecretKey),
      allowedHosts: new Set((c.NOTIFY_ALLOWED_HOSTS ?? '').split(',').filter(Boolean).map((h) => h.toLowerCase().replace(/^\[(.*)\]$/, '$1'))),
      connectTimeoutMs: c.NOTIFY_CONNECT_TIMEOUT_MS,
      timeoutMs: c.NOTIFY_TIMEOUT_MS,
      smtp: smtpConfig(c.SMTP_URL, c.SMTP_FROM, c.SMTP_INSECURE_LOCALHOST ?? false),
      maxAttempts: c.NOTIFY_MAX_ATTEMPTS,
      retryBaseMs: c.NOTIFY_RETRY_BASE_MS,
      retryMaxMs: Math.max(c.NOTIFY_RETRY_MAX_MS, c.NOTIFY_RETRY_BASE_MS),
      sweepSeconds: c.NOTIFY_SWEEP_SECONDS,
      workerConcurrency: c.NOTIFY_CONCURRENCY,
      retentionDays: c.NOTIFY_RETENTION_DAYS,
    },
  };
}

/** Whether an SMTP host (as in a URL, IPv6 in brackets) is this machine. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::1';
}

function smtpConfig(url: string | undefined, from: string | undefined, insecureLocalhost: boolean): SmtpConfig | null {
  if (!url) {
    if (from) throw new ConfigError('invalid SMTP_FROM: set only together with SMTP_URL');
    return null;
  }
  if (!from) throw new ConfigError('missing SMTP_FROM: required when SMTP_URL is set');
  // Never echo SMTP_URL: it may carry the password.
  if (insecureLocalhost && !isLoopbackHost(new URL(url).hostname)) throw new ConfigError('invalid SMTP_INSECURE_LOCALHOST: allowed only when the SMTP_URL host is loopback (localhost, 127.0.0.0/8, ::1)');
  return { url, from, insecureLocalhost };
}

/** For entry points: the config, or one line on stderr naming the bad variable and exit code 1. */
export function loadConfigOrExit(program: string): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${program}: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
}

/** Algorithms an OIDC issuer may sign with: asymmetric only, so that no shared secret is ever a key. */
export const OIDC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const httpUrl = z.string().refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), 'must be an http(s) URL');
const claimName = z.string().min(1).max(200);
const oidcIssuer = z.strictObject({
  issuer: httpUrl,
  jwksUri: httpUrl.optional(),
  audience: z.union([z.string().min(1).transform((a) => [a]), z.array(z.string().min(1)).min(1)]),
  algorithms: z.array(z.enum(OIDC_ALGORITHMS)).min(1).default(['RS256', 'ES256']),
  subjectClaim: claimName.default('sub'),
  subjectPrefix: z.string().max(50).default(''),
  rolesClaim: claimName.default('roles'),
  rolePrefix: z.string().max(100).default(''),
  teamsClaim: claimName.default('teams'),
  teamPrefix: z.string().max(100).default(''),
});

/** OIDC_ISSUERS: a JSON array of issuers; in production their key sets are fetched over https only. */
function oidcIssuers(raw: string | undefined, isProduction: boolean): OidcIssuerConfig[] {
  if (!raw) return [];
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new ConfigError('invalid OIDC_ISSUERS: must be a JSON array of { issuer, audience, … }');
  }
  const parsed = z.array(oidcIssuer).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    throw new ConfigError(`invalid OIDC_ISSUERS: ${at ? `${at.replace(/^\./, '')}: ` : ''}${issue.message}`);
  }
  const issuers = parsed.data.map((i) => ({ ...i, jwksUri: i.jwksUri ?? null }));
  const seen = new Set<string>();
  for (const [n, i] of issuers.entries()) {
    if (seen.has(i.issuer)) throw new ConfigError(`invalid OIDC_ISSUERS: [${n}].issuer: ${i.issuer} is listed twice`);
    seen.add(i.issuer);
    const fetched = i.jwksUri ?? i.issuer;
    if (isProduction && new URL(fetched).protocol !== 'https:') {
      throw new ConfigError(`invalid OIDC_ISSUERS: [${n}].${i.jwksUri ? 'jwksUri' : 'issuer'}: must be https when NODE_ENV=production (got ${fetched})`);
    }
  }
  return issuers;
}

function trainerRepositories(raw: string | undefined): Record<string, string> {
  // The built-in trainers are compiled next to this file: dist/src/config.js → dist/jobs/trainers.
  const map: Record<string, string> = { [BUILTIN_TRAINERS_REPOSITORY]: path.resolve(__dirname, '../jobs/trainers') };
  if (!raw) return map;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('invalid TRAINER_REPOSITORIES: must be a JSON object of repository URL → directory');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string' || !path.isAbsolute(v))) {
    throw new ConfigError('invalid TRAINER_REPOSITORIES: must map repository URLs to absolute directories');
  }
  return { ...map, ...(parsed as Record<string, string>) };
}

// One directory per data directory, so that two installations of one user keep their own secrets.
function defaultSecretsDir(env: NodeJS.ProcessEnv, dataDir: string): string {
  const xdg = env.XDG_CONFIG_HOME;
  const configHome = xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || homedir(), '.config');
  return path.join(configHome, 'modelgov', 'secrets', createHash('sha256').update(dataDir).digest('hex').slice(0, 16));
}

function developmentSecret(secretsDir: string, dataDir: string): string {
  return keptSecret(secretsDir, 'jwt-secret', dataDir, () => randomBytes(48).toString('base64url'));
}

function developmentSigningKey(secretsDir: string, dataDir: string): string {
  return keptSecret(secretsDir, 'audit-signing-key.pem', dataDir, () =>
    generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString().trim(),
  );
}

/** AUDIT_SIGNING_KEY as PEM: accepted as PEM, or as that PEM in base64 (one line, for env files). */
function ed25519PrivateKey(value: string): string {
  const pem = value.includes('-----BEGIN') ? value : Buffer.from(value, 'base64').toString('utf8');
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(key.asymmetricKeyType);
    return key.export({ format: 'pem', type: 'pkcs8' }).toString();
  } catch {
    throw new ConfigError('invalid AUDIT_SIGNING_KEY: must be an Ed25519 private key (PKCS#8 PEM, or that PEM in base64)');
  }
}

/** NOTIFY_SECRET_KEY as 32 bytes: given as 64 hex digits or as base64. */
function aes256Key(value: string): Buffer {
  const key = /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
  if (key.length !== 32) throw new ConfigError('invalid NOTIFY_SECRET_KEY: must be 32 bytes, as 64 hex digits or base64');
  return key;
}

function keptSecret(secretsDir: string, name: string, legacyDir: string, generate: () => string): string {
  const file = path.join(secretsDir, name);
  try {
    mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
    if (!existsSync(file)) moveLegacySecret(path.join(legacyDir, name), file);
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
    const secret = generate();
    // 'wx' so that two processes starting together keep the first one's secret.
    try {
      writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
    } catch {
      return readFileSync(file, 'utf8').trim();
    }
    return secret;
  } catch (e) {
    throw new ConfigError(`invalid SECRETS_DIR: cannot keep the development ${name} in ${secretsDir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

// Earlier releases kept development secrets under DATA_DIR. Moved (copied with mode 0600, then
// removed) rather than regenerated, so that tokens already issued stay valid.
function moveLegacySecret(legacy: string, file: string): void {
  if (legacy === file || !existsSync(legacy)) return;
  try {
    writeFileSync(file, readFileSync(legacy), { mode: 0o600, flag: 'wx' });
  } catch (e) {
    // Another process starting at the same time moved it first.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  rmSync(legacy, { force: true });
}
