import { MigrationInterface, QueryRunner } from "typeorm";

/** RUN_BUDGET alerts: a model version unloaded because its runs kept overrunning the inference run budget. */
export class RunBudgetAlert1795312000000 implements MigrationInterface {
    name = 'RunBudgetAlert1795312000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TYPE "public"."alert_kind" ADD VALUE IF NOT EXISTS 'RUN_BUDGET'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        // PostgreSQL cannot drop one value of an enum: the type is rebuilt without it.
        await queryRunner.query(`DELETE FROM "alert" WHERE "kind" = 'RUN_BUDGET'`);
        await queryRunner.query(`ALTER TYPE "public"."alert_kind" RENAME TO "alert_kind_old"`);
        await queryRunner.query(`CREATE TYPE "public"."alert_kind" AS ENUM('DRIFT', 'PREDICTION_DRIFT', 'LATENCY', 'ERROR_RATE')`);
        await queryRunner.query(`ALTER TABLE "alert" ALTER COLUMN "kind" TYPE "public"."alert_kind" USING "kind"::text::"public"."alert_kind"`);
        await queryRunner.query(`DROP TYPE "public"."alert_kind_old"`);
    }
}
