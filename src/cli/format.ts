// Output helpers shared by the listing commands: docker-style tables (columns padded to
// the widest cell plus three spaces), Go-template-style --format strings
// ("{{.ID}}: {{.Repository}}", "table {{.ID}}\t{{.Tag}}", "{{json .}}"), human sizes
// ("142MB", "1.84kB") and ages ("13 days ago").

export type Row = Record<string, unknown>;

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Value of ".A.B" in a row; "." is the row itself. */
function lookup(row: unknown, expr: string): unknown {
  if (expr === '.') return row;
  let v: unknown = row;
  for (const k of expr.replace(/^\./, '').split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

function show(v: unknown): string {
  if (v === undefined || v === null) return '<no value>';
  if (typeof v === 'object') return Array.isArray(v) ? `[${v.map(show).join(' ')}]` : JSON.stringify(v);
  return String(v);
}

function evaluate(row: unknown, action: string): string {
  const words = action.trim().split(/\s+/);
  if (words[0] === 'json' && words.length === 2) return JSON.stringify(lookup(row, words[1]!)) ?? 'null';
  if (words.length === 1 && words[0]!.startsWith('.')) return show(lookup(row, words[0]!));
  throw new Error(`template: unsupported action '{{${action}}}' (supported: {{.Field}}, {{.A.B}}, {{json .Field}})`);
}

/** Applies a template to one row. Escapes \t and \n are understood, as docker does. */
export function applyTemplate(template: string, row: unknown): string {
  return template.replace(/\\t/g, '\t').replace(/\\n/g, '\n').replace(/\{\{(.*?)\}\}/g, (_m, a: string) => evaluate(row, a));
}

/**
 * Renders rows with a --format string. "table ..." prints a header row (from `headers`,
 * keyed by field name) and aligns columns; otherwise one line per row.
 */
export function renderFormat(format: string, rows: Row[], headers: Record<string, string>): string {
  const m = /^table\s*(.*)$/s.exec(format);
  if (!m) return rows.map((r) => applyTemplate(format, r) + '\n').join('');
  const tpl = m[1] || Object.keys(headers).map((k) => `{{.${k}}}`).join('\t');
  const header = applyTemplate(tpl.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_x, k: string) => headers[k] ?? k.toUpperCase()), {}).split('\t');
  const body = rows.map((r) => applyTemplate(tpl, r).split('\t'));
  return renderTable(header, body);
}

/** Decimal units with three significant digits, as docker's units.HumanSizeWithPrecision(n, 3). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

/** "13 days ago", following docker's units.HumanDuration. */
export function humanAge(iso: string | null, now = Date.now()): string {
  if (!iso) return 'N/A';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return 'N/A';
  const s = Math.max(0, (now - t) / 1000);
  const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`;
  let d: string;
  if (s < 1) d = 'Less than a second';
  else if (s < 60) d = plural(Math.floor(s), 'second');
  else if (s < 3600) d = Math.floor(s / 60) === 1 ? 'About a minute' : plural(Math.floor(s / 60), 'minute');
  else if (s < 172800) d = Math.round(s / 3600) === 1 ? 'About an hour' : plural(Math.round(s / 3600), 'hour');
  else if (s < 86400 * 14) d = plural(Math.floor(s / 86400), 'day');
  else if (s < 86400 * 60) d = plural(Math.floor(s / 86400 / 7), 'week');
  else if (s < 86400 * 365 * 2) d = plural(Math.floor(s / 86400 / 30), 'month');
  else d = plural(Math.floor(s / 86400 / 365), 'year');
  return `${d} ago`;
}

/** docker's --filter reference= glob: "*" within one path segment, "?" one character. */
export function referenceGlob(pattern: string): RegExp {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${re}$`);
}

/** The options every listing command takes (docker's images and ps). */
export const listingOptions = {
  all: { type: 'boolean', short: 'a' },
  quiet: { type: 'boolean', short: 'q' },
  'no-trunc': { type: 'boolean' },
  format: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/**
 * A listing as the user asked for it: --json (the rows), -q (unique IDs), --format, or the
 * default table of `columns`.
 */
export function renderListing(how: { json?: boolean; quiet?: boolean; format?: string }, rows: Row[], headers: Record<string, string>, columns: string[]): string {
  if (how.json) return JSON.stringify(rows, null, 2) + '\n';
  if (how.quiet) return [...new Set(rows.map((r) => String(r.ID)))].map((id) => `${id}\n`).join('');
  if (how.format) return renderFormat(how.format, rows, headers);
  return renderTable(columns.map((c) => headers[c]!), rows.map((r) => columns.map((c) => String(r[c]))));
}
