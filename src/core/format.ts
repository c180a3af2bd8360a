// How numbers read in messages: six significant digits, one decimal from a thousand up.
export function formatNumber(n: number): string {
  return Math.abs(n) >= 1000 ? n.toFixed(1) : Number(n.toPrecision(6)).toString();
}
