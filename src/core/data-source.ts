import 'reflect-metadata';
import { createDataSource } from './database';

// Used by the TypeORM CLI to generate migrations from the entities.
export default createDataSource(process.env.DATABASE_URL ?? 'postgres://localhost:5432/modelgov_migrations');
