/**
 * The layers of modelgov, bottom to top; each imports only from the layers below it.
 *
 *   src/config.ts      configuration, read and validated once
 *   src/core/          mechanisms: context and transactions, errors, policy gate, abilities and
 *                      CASL→SQL, the audit-chain append, loaders, pagination, ids, events, logger,
 *                      database, artifact store, the queue port and the outbox
 *   src/<domain>/      access → lineage → registry → training → rollouts → inference → monitoring → audit
 *                      (a domain imports core and the domains before it, never one after it)
 *   jobs/*.processor   each rebuilds a job's context and calls one domain service
 *   src/app/           assembly: schema, service wiring, HTTP and WebSocket servers, worker
 *                      registry, entity list, node resolution, seeding
 *   entry points       src/main.ts, src/cli.ts, jobs/worker.ts
 *
 * The trainer program (jobs/trainers/) runs in a child process of its own: it may use pure
 * helpers of the domains, never the server.
 */
const DOMAINS = ['access', 'lineage', 'registry', 'training', 'rollouts', 'inference', 'monitoring', 'audit'];

const domainRules = DOMAINS.slice(0, -1).map((domain, i) => ({
  name: `domain-order-${domain}`,
  comment: `${domain} comes before ${DOMAINS.slice(i + 1).join(', ')}: what it needs from them goes through an interface or an event`,
  severity: 'error',
  from: { path: `^src/${domain}/` },
  to: { path: `^src/(${DOMAINS.slice(i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'a cycle makes two modules one: neither can be understood, tested or loaded without the other',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'config-is-the-bottom',
      comment: 'configuration is read before anything else exists, so it depends on nothing of the product',
      severity: 'error',
      from: { path: '^src/config\\.ts$' },
      to: { path: '^(src|jobs|migrations)/' },
    },
    {
      name: 'core-is-mechanism',
      comment: 'core holds mechanisms every domain shares; a domain, the assembly, jobs or migrations above it would make every domain depend on every other',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { path: '^(src/(?!core/|config\\.ts$)|jobs/|migrations/)' },
    },
    ...domainRules,
    {
      name: 'domains-below-assembly',
      comment: 'domains never reach the assembly, the entry points or the job processors: those are built from the domains, not the other way round',
      severity: 'error',
      from: { path: `^src/(${DOMAINS.join('|')})/` },
      to: { path: '^(src/app/|src/main\\.ts$|src/cli\\.ts$|jobs/)' },
    },
    {
      name: 'resolvers-hold-no-data-access',
      comment: 'a resolver is shape, a policy declaration and one service call: queries live in services and scoped loaders, so no resolver imports the ORM or the driver',
      severity: 'error',
      from: { path: '\\.resolver\\.ts$' },
      to: { path: 'node_modules/(typeorm|pg|@types/pg)/' },
    },
    {
      name: 'migrations-only-from-assembly',
      comment: 'the schema changes are applied by the assembly (server start, CLI, tests); nothing else runs them',
      severity: 'error',
      from: { path: '^(src/(?!app/)|jobs/)' },
      to: { path: '^migrations/' },
    },
    {
      name: 'processors-call-domains',
      comment: 'a job processor rebuilds the context and calls a domain service; it never starts servers or other processes',
      severity: 'error',
      from: { path: '^jobs/(?!worker\\.ts$)' },
      to: { path: '^(src/app/|src/main\\.ts$|src/cli\\.ts$|jobs/worker\\.ts$)' },
    },
    {
      name: 'trainer-is-its-own-program',
      comment: 'the trainer runs in a child process with no database, queue or server: it may only use pure helpers',
      severity: 'error',
      from: { path: '^jobs/trainers/' },
      to: { path: '^(src/app/|src/core/(?!prng\\.ts$)|jobs/(?!trainers/))' },
    },
    {
      name: 'worker-loads-no-http',
      comment: 'a worker-only process serves no API: it must not load Apollo, Express, graphql-ws or any resolver',
      severity: 'error',
      from: { path: '^jobs/worker\\.ts$' },
      to: { path: '(node_modules/(@apollo/server|@as-integrations|express|graphql-ws)/|\\.resolver\\.ts$|^src/app/server\\.ts$)', reachable: true },
    },
    {
      name: 'entry-points-are-the-top',
      comment: 'nothing imports an entry point: each is a process of its own',
      severity: 'error',
      from: {},
      to: { path: '^(src/main\\.ts|src/cli\\.ts|jobs/worker\\.ts)$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|test|bench|client-examples)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
