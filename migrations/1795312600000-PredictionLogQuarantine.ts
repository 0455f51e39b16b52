import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Where the prediction log writer sets aside a record the database refuses because of its data,
 * so that the rest of its batch and every later batch are written.
 */
export class PredictionLogQuarantine1795312600000 implements MigrationInterface {
    name = 'PredictionLogQuarantine1795312600000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "prediction_log_quarantine" ("id" BIGSERIAL NOT NULL, "quarantined_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), "deployment_id" text NOT NULL, "team_id" text NOT NULL, "request_id" text NOT NULL, "error" text NOT NULL, "record" text NOT NULL, CONSTRAINT "PK_b79355235fd854f507de8e94d78" PRIMARY KEY ("id"))`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP TABLE "prediction_log_quarantine"`);
    }

}
