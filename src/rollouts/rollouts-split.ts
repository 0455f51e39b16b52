import type { SplitEntry } from './rollout.entity';

/**
 * The split at one canary step: the new version gets `percent`; the rest is shared by the baseline
 * versions in proportion to their baseline weights (largest remainders, so it sums to 100).
 */
export function canarySplit(baseline: SplitEntry[], newVersionId: string, percent: number): SplitEntry[] {
  const others = baseline.filter((s) => s.modelVersionId !== newVersionId);
  if (percent >= 100 || others.length === 0) return [{ modelVersionId: newVersionId, weight: 100 }];
  const rest = 100 - percent;
  const total = others.reduce((n, s) => n + s.weight, 0);
  const exact = others.map((s) => ({ id: s.modelVersionId, w: (s.weight / total) * rest }));
  const floors = exact.map((e) => ({ id: e.id, w: Math.floor(e.w), frac: e.w - Math.floor(e.w) }));
  let missing = rest - floors.reduce((n, f) => n + f.w, 0);
  for (const f of [...floors].sort((a, b) => b.frac - a.frac || a.id.localeCompare(b.id))) {
    if (missing <= 0) break;
    f.w += 1;
    missing -= 1;
  }
  const split = [{ modelVersionId: newVersionId, weight: percent }, ...floors.filter((f) => f.w > 0).map((f) => ({ modelVersionId: f.id, weight: f.w }))];
  return split.filter((s) => s.weight > 0);
}
