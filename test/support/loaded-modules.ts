import { writeFileSync } from 'node:fs';

// Preloaded with `node --require` into a process under test: when the process exits, the files of
// every module it loaded are written to $LOADED_MODULES_REPORT (one JSON array).
const report = process.env.LOADED_MODULES_REPORT;
if (report) process.on('exit', () => writeFileSync(report, JSON.stringify(Object.keys(require.cache))));
