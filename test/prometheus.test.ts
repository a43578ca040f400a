// The Prometheus text exposition format (src/prometheus.ts): exact text for given families, the
// escaping of HELP text and label values, special values, and names the format does not allow.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PROMETHEUS_CONTENT_TYPE, escapeHelp, escapeLabelValue, formatValue, renderPrometheus } from '../src/prometheus.js';

describe('renderPrometheus', () => {
  test('HELP and TYPE before each family\'s samples, labels in the given order, a line feed after every line', () => {
    const text = renderPrometheus([
      { name: 'requests_total', help: 'Requests served.', type: 'counter', samples: [{ value: 1027 }] },
      {
        name: 'connections_open', help: 'Connections open, per worker.', type: 'gauge',
        samples: [{ labels: [['worker', '41'], ['kind', 'ws']], value: 3 }, { labels: [['worker', '42'], ['kind', 'ws']], value: 0 }],
      },
    ]);
    assert.equal(text, [
      '# HELP requests_total Requests served.',
      '# TYPE requests_total counter',
      'requests_total 1027',
      '# HELP connections_open Connections open, per worker.',
      '# TYPE connections_open gauge',
      'connections_open{worker="41",kind="ws"} 3',
      'connections_open{worker="42",kind="ws"} 0',
      '',
    ].join('\n'));
  });

  test('a family without samples still declares itself; no families is no text', () => {
    assert.equal(renderPrometheus([{ name: 'idle', help: 'h', type: 'gauge', samples: [] }]), '# HELP idle h\n# TYPE idle gauge\n');
    assert.equal(renderPrometheus([]), '');
  });

  test('an empty label list prints no braces', () => {
    assert.equal(renderPrometheus([{ name: 'x', help: 'h', type: 'gauge', samples: [{ labels: [], value: 1 }] }]), '# HELP x h\n# TYPE x gauge\nx 1\n');
  });

  test('label values and HELP text are escaped as the format says', () => {
    const text = renderPrometheus([{
      name: 'odd', help: 'a \\ backslash,\na line feed and "quotes"', type: 'gauge',
      samples: [{ labels: [['path', 'C:\\dir\n"x"']], value: 1 }],
    }]);
    assert.equal(text, [
      '# HELP odd a \\\\ backslash,\\na line feed and "quotes"',
      '# TYPE odd gauge',
      'odd{path="C:\\\\dir\\n\\"x\\""} 1',
      '',
    ].join('\n'));
  });

  test('refuses metric and label names the format does not allow, naming them', () => {
    assert.throws(() => renderPrometheus([{ name: '2fast', help: '', type: 'gauge', samples: [] }]), { message: 'invalid metric name "2fast"' });
    assert.throws(() => renderPrometheus([{ name: 'a-b', help: '', type: 'gauge', samples: [] }]), { message: 'invalid metric name "a-b"' });
    assert.throws(() => renderPrometheus([{ name: 'ok', help: '', type: 'gauge', samples: [{ labels: [['__reserved', 'x']], value: 1 }] }]),
      { message: 'invalid label name "__reserved"' });
    assert.throws(() => renderPrometheus([{ name: 'ok', help: '', type: 'gauge', samples: [{ labels: [['a.b', 'x']], value: 1 }] }]),
      { message: 'invalid label name "a.b"' });
  });
});

describe('the pieces', () => {
  test('escapeHelp escapes backslashes and line feeds only', () => {
    assert.equal(escapeHelp('a\\b\nc"d'), 'a\\\\b\\nc"d');
  });

  test('escapeLabelValue escapes backslashes, double quotes and line feeds', () => {
    assert.equal(escapeLabelValue('a\\b\nc"d'), 'a\\\\b\\nc\\"d');
    assert.equal(escapeLabelValue('plain 4242'), 'plain 4242');
  });

  test('formatValue writes what Go\'s ParseFloat reads', () => {
    assert.equal(formatValue(0), '0');
    assert.equal(formatValue(12345678901), '12345678901');
    assert.equal(formatValue(0.25), '0.25');
    assert.equal(formatValue(-3), '-3');
    assert.equal(formatValue(NaN), 'NaN');
    assert.equal(formatValue(Infinity), '+Inf');
    assert.equal(formatValue(-Infinity), '-Inf');
  });

  test('the content type is the text format\'s, version 0.0.4', () => {
    assert.equal(PROMETHEUS_CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
  });
});
