import 'reflect-metadata';
import { loadConfigOrExit } from '../config';
import { createAppDataSource } from './database';

// Used by the TypeORM CLI to generate migrations from the entities, against DATABASE_URL.
export default createAppDataSource(loadConfigOrExit('modelgov migration:generate').databaseUrl);
