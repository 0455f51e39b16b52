import { existsSync } from 'node:fs';
import path from 'node:path';

/** The checkout the tests were compiled from (the folder holding package.json and schema/). */
export function repoRoot(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'schema'))) return dir;
  }
  return process.cwd();
}
