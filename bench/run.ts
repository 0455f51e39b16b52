import 'reflect-metadata';
import { driftBench } from './drift.bench';
import { exportBench } from './export.bench';
import { lineageBench } from './lineage.bench';
import { queueBench } from './queue.bench';
import { inferenceBench } from './inference.bench';
import { alertsBench } from './alerts.bench';
import { loopBench } from './loop.bench';
import { notifyBench } from './notify.bench';

const BENCHES: Record<string, () => Promise<void>> = {
  lineage: lineageBench,
  queue: queueBench,
  inference: inferenceBench,
  export: exportBench,
  alerts: alertsBench,
  drift: driftBench,
  loop: loopBench,
  notify: notifyBench,
};

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  const unknown = names.filter((n) => !BENCHES[n]);
  if (names.length === 0 || unknown.length) {
    console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> ...`);
    process.exit(2);
  }
  for (const n of names) await BENCHES[n]();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
