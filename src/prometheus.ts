// The Prometheus text exposition format, version 0.0.4: what GET /metrics answers (metrics.ts
// says what is measured). Pure: families of samples in, text out.
//
//   # HELP chat_messages_delivered_total Messages sent to subscribers from their queues.
//   # TYPE chat_messages_delivered_total counter
//   chat_messages_delivered_total 1200
//   # HELP asgi_websocket_connections_open WebSocket connections open, per worker.
//   # TYPE asgi_websocket_connections_open gauge
//   asgi_websocket_connections_open{worker="4242"} 3
//
// The rules followed (the format's specification, "Text format details"): one `# HELP` and one
// `# TYPE` line per family, before its samples; a family's samples together; in HELP text a
// backslash is written `\\` and a line feed `\n`; in a label value a backslash, a double quote and
// a line feed are written `\\`, `\"` and `\n`; values are Go floats, so also `NaN`, `+Inf` and
// `-Inf`; every line ends with a line feed, the last one too. A counter's name ends in `_total`
// (a convention, which metrics.ts follows and test/metrics.test.ts checks).

/** What the scrape's response says it is. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricType = 'counter' | 'gauge';

export interface Sample {
  /** Label names and values, in the order to print them; none for a family's only sample. */
  labels?: ReadonlyArray<readonly [string, string]>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: readonly Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
// Names starting with `__` are reserved for Prometheus's own use.
const LABEL_NAME = /^(?!__)[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The exposition of `families`, in their order. Throws on a name the format does not allow. */
export function renderPrometheus(families: readonly MetricFamily[]): string {
  let text = '';
  for (const family of families) {
    if (!METRIC_NAME.test(family.name)) throw new Error(`invalid metric name ${JSON.stringify(family.name)}`);
    text += `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`;
    for (const sample of family.samples) text += `${family.name}${renderLabels(sample.labels)} ${formatValue(sample.value)}\n`;
  }
  return text;
}

function renderLabels(labels: Sample['labels']): string {
  if (labels === undefined || labels.length === 0) return '';
  const parts: string[] = [];
  for (const [name, value] of labels) {
    if (!LABEL_NAME.test(name)) throw new Error(`invalid label name ${JSON.stringify(name)}`);
    parts.push(`${name}="${escapeLabelValue(value)}"`);
  }
  return `{${parts.join(',')}}`;
}

/** HELP text: `\` and line feeds escaped (a double quote stays as it is). */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A label value: `\`, `"` and line feeds escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A sample's value as Go's ParseFloat reads it back. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
