import 'reflect-metadata';
import { createAppDataSource } from './database';

// Used by the TypeORM CLI to generate migrations from the entities.
export default createAppDataSource(process.env.DATABASE_URL ?? 'postgres://localhost:5432/modelgov_migrations');
