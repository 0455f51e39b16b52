import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * A training run produces one model version: the index on model_version.training_run_id becomes
 * unique. A database where some run already has several versions (one registered by its worker, the
 * others by clients naming the run) is not changed: which one is the run's real output is for its
 * owners to decide, so the migration stops and names the runs.
 */
export class OneOutputPerTrainingRun1795310000000 implements MigrationInterface {
    name = 'OneOutputPerTrainingRun1795310000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        const shared: Array<{ training_run_id: string; versions: number }> = await queryRunner.query(
            `SELECT training_run_id, count(*)::int AS versions FROM model_version WHERE training_run_id IS NOT NULL GROUP BY training_run_id HAVING count(*) > 1 ORDER BY training_run_id`,
        );
        if (shared.length) {
            throw new Error(
                `${shared.length} training run(s) have more than one model version (${shared.map((r) => `${r.training_run_id}: ${r.versions}`).join(', ')}); ` +
                    'keep the version each run really produced, detach the others (training_run_id = NULL) and migrate again',
            );
        }
        await queryRunner.query(`DROP INDEX "public"."IDX_ae5caed075a6b72f043246b87a"`);
        await queryRunner.query(`CREATE UNIQUE INDEX "IDX_ae5caed075a6b72f043246b87a" ON "model_version" ("training_run_id") `);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP INDEX "public"."IDX_ae5caed075a6b72f043246b87a"`);
        await queryRunner.query(`CREATE INDEX "IDX_ae5caed075a6b72f043246b87a" ON "model_version" ("training_run_id") `);
    }
}
