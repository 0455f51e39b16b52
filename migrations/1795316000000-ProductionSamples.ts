import { MigrationInterface, QueryRunner } from "typeorm";

/** Production samples: the lineage edge SAMPLED (deployment → dataset version), with its window, rows and unusable rows by cause. */
export class ProductionSamples1795316000000 implements MigrationInterface {
    name = 'ProductionSamples1795316000000'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TYPE "public"."sample_part" AS ENUM('TRAIN', 'HOLDOUT')`);
        await queryRunner.query(`CREATE TABLE "dataset_version_sample" ("dataset_version_id" uuid NOT NULL, "deployment_id" uuid NOT NULL, "team_id" uuid NOT NULL, "sample_id" uuid NOT NULL, "part" "public"."sample_part" NOT NULL, "window_from" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "window_to" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "sampled_from" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "sampled_to" TIMESTAMP(3) WITH TIME ZONE NOT NULL, "rows" integer NOT NULL, "unusable_inputs_hash_only" integer NOT NULL, "unusable_unlabelled" integer NOT NULL, "unusable_unstorable_value" integer NOT NULL, "unusable_other_columns" integer NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP(3) WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_94540b26ebc35058e2826db621a" PRIMARY KEY ("dataset_version_id"))`);
        await queryRunner.query(`CREATE INDEX "IDX_45f79730c80ff1a3a165a17e0d" ON "dataset_version_sample"  ("sample_id") `);
        await queryRunner.query(`CREATE INDEX "IDX_1dc0ddeb11c280086e24ad29be" ON "dataset_version_sample"  ("deployment_id", "window_from") `);
        await queryRunner.query(`ALTER TABLE "dataset_version_sample" ADD CONSTRAINT "FK_94540b26ebc35058e2826db621a" FOREIGN KEY ("dataset_version_id") REFERENCES "dataset_version"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "dataset_version_sample" DROP CONSTRAINT "FK_94540b26ebc35058e2826db621a"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_1dc0ddeb11c280086e24ad29be"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_45f79730c80ff1a3a165a17e0d"`);
        await queryRunner.query(`DROP TABLE "dataset_version_sample"`);
        await queryRunner.query(`DROP TYPE "public"."sample_part"`);
    }

}
