/** The evaluation metrics (`metrics.json`): accuracy, AUC and log-loss of predicted probabilities against labels. */

/**
 * `metrics.json`: computed on the evaluation rows with the exported (float32) model.
 * `auc` is left out when those rows hold one class only, since every value must be a finite number.
 */
export interface TabularTrainerMetrics {
  accuracy: number;
  auc?: number;
  logLoss: number;
  trainRows: number;
  evalRows: number;
}

function auc(p: Float64Array, y: Float64Array): number | null {
  const n = p.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[a] - p[b] || a - b);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && p[order[j + 1]] === p[order[i]]) j++;
    // Tied scores share the average of their 1-based ranks.
    const rank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) {
      if (y[order[k]] === 1) {
        positives++;
        rankSum += rank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return null;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** The metrics of probabilities `p` against labels `y`. */
export function metricsOf(p: Float64Array, y: Float64Array, trainRows: number): TabularTrainerMetrics {
  const eps = 1e-15;
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < p.length; i++) {
    if ((p[i] >= 0.5 ? 1 : 0) === y[i]) correct++;
    const q = Math.min(Math.max(p[i], eps), 1 - eps);
    loss -= y[i] === 1 ? Math.log(q) : Math.log(1 - q);
  }
  const area = auc(p, y);
  return { accuracy: correct / p.length, ...(area === null ? {} : { auc: area }), logLoss: loss / p.length, trainRows, evalRows: p.length };
}
