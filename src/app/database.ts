import type { DataSource } from 'typeorm';
import { MIGRATIONS } from '../../migrations';
import { createDataSource, openDatabase, type DatabaseSchema, type StatementCounter } from '../core/database';
import { ENTITIES } from './entities';

/** modelgov's schema: every entity, and the migrations that must produce exactly their tables. */
export const SCHEMA: DatabaseSchema = { entities: ENTITIES, migrations: MIGRATIONS };

/** Connects to modelgov's database, creating it when missing, and applies pending migrations. */
export function openAppDatabase(url: string, counter?: StatementCounter): Promise<DataSource> {
  return openDatabase(url, SCHEMA, counter);
}

/** A data source over modelgov's schema, not yet connected. */
export function createAppDataSource(url: string, counter?: StatementCounter): DataSource {
  return createDataSource(url, SCHEMA, counter);
}
