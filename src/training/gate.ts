/** Thresholds per metric, from a run's config under `gate`. */
export type GateSpec = Record<string, { min?: number; max?: number; minDeltaVsChampion?: number; maxDeltaVsChampion?: number }>;

export interface GateCheck {
  metric: string;
  rule: 'min' | 'max' | 'minDeltaVsChampion' | 'maxDeltaVsChampion';
  threshold: number;
  value: number | null;
  passed: boolean;
}

export interface GateResult {
  passed: boolean;
  checks: GateCheck[];
  reasons: string[];
  champion: number | null;
}

/**
 * The evaluation gate: absolute thresholds (`min`, `max`) and thresholds relative to the model's
 * current champion (`minDeltaVsChampion`: value − champion ≥ threshold). A relative check passes
 * when there is no champion yet; a missing metric fails its checks.
 */
export function evaluateGate(spec: GateSpec | undefined, metrics: Record<string, number>, champion: { version: number; metrics: Record<string, number> } | null): GateResult {
  const checks: GateCheck[] = [];
  for (const [metric, rules] of Object.entries(spec ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    if (!rules || typeof rules !== 'object') continue;
    const value = typeof metrics[metric] === 'number' ? metrics[metric] : null;
    for (const rule of ['min', 'max', 'minDeltaVsChampion', 'maxDeltaVsChampion'] as const) {
      const threshold = rules[rule];
      if (typeof threshold !== 'number') continue;
      let passed: boolean;
      if (value === null) passed = false;
      else if (rule === 'min') passed = value >= threshold;
      else if (rule === 'max') passed = value <= threshold;
      else {
        const base = champion?.metrics[metric];
        if (typeof base !== 'number') passed = true;
        else passed = rule === 'minDeltaVsChampion' ? value - base >= threshold : value - base <= threshold;
      }
      checks.push({ metric, rule, threshold, value, passed });
    }
  }
  const reasons = checks
    .filter((c) => !c.passed)
    .map((c) => (c.value === null ? `${c.metric} missing` : `${c.metric} ${c.value} fails ${c.rule} ${c.threshold}${c.rule.includes('Champion') ? ` (champion v${champion?.version})` : ''}`));
  return { passed: reasons.length === 0, checks, reasons, champion: champion?.version ?? null };
}
