// The parameter panel: one entry per request field of /v1/chat/completions. An empty field is not sent,
// so the server's own default applies (the placeholder shows it). Values are kept in localStorage.

const STORAGE = 'edge.params';

// needs: the model capability a field requires (from /v1/models `capabilities`)
export const FIELDS = [
  { key: 'system', label: 'System prompt', kind: 'textarea', placeholder: 'none' },
  { key: 'temperature', kind: 'number', min: 0, max: 2, step: 0.05, placeholder: '0.7' },
  { key: 'top_p', kind: 'number', min: 0, max: 1, step: 0.01, placeholder: '0.95' },
  { key: 'min_p', kind: 'number', min: 0, max: 1, step: 0.01, placeholder: '0' },
  { key: 'top_k', kind: 'integer', min: 0, placeholder: '0 (off)' },
  { key: 'max_tokens', kind: 'integer', min: 1, max: 4096, placeholder: 'up to 4096' },
  { key: 'seed', kind: 'integer', min: 0, max: 2147483647, placeholder: 'random' },
  { key: 'stop', label: 'stop (one per line, up to 4)', kind: 'lines', placeholder: 'none' },
  { key: 'presence_penalty', kind: 'number', min: -2, max: 2, step: 0.1, placeholder: '0' },
  { key: 'frequency_penalty', kind: 'number', min: -2, max: 2, step: 0.1, placeholder: '0' },
  { key: 'repetition_penalty', kind: 'number', min: 0.1, max: 2, step: 0.05, placeholder: '1' },
  { key: 'logit_bias', label: 'logit_bias (JSON: token id → bias)', kind: 'json', placeholder: '{"1234": -100}' },
  { key: 'logprobs', label: 'logprobs (per-token view)', kind: 'checkbox' },
  { key: 'top_logprobs', kind: 'integer', min: 0, max: 20, placeholder: '0' },
  { key: 'reasoning_effort', kind: 'select', options: ['', 'none', 'minimal', 'low', 'medium', 'high'], needs: 'thinking' },
  { key: 'thinking_budget', kind: 'integer', min: 0, max: 4096, placeholder: 'none', needs: 'thinking' },
  { key: 'response_format', kind: 'select', options: ['text', 'json_object', 'json_schema'] },
  { key: 'json_schema', label: 'JSON schema (json_schema mode)', kind: 'json', placeholder: '{"type": "object", ...}' },
  { key: 'tools', label: 'tools (JSON list of function tools)', kind: 'json', needs: 'tools',
    placeholder: '[{"type": "function", "function": {"name": "get_weather", "parameters": {...}}}]' },
  { key: 'tool_choice', label: 'tool_choice (auto, none, required or a tool name)', kind: 'text', placeholder: 'auto', needs: 'tools' },
  { key: 'parallel_tool_calls', kind: 'select', options: ['', 'true', 'false'], needs: 'tools' },
  { key: 'image_detail', label: 'image detail', kind: 'select', options: ['auto', 'low', 'high'], needs: 'vision' },
];

export function loadValues() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE)) ?? {};
  } catch {
    return {};
  }
}

export function saveValues(values) {
  localStorage.setItem(STORAGE, JSON.stringify(values));
}

/** Builds the panel's inputs; `onChange(values)` runs on every edit. */
export function buildPanel(container, values, onChange) {
  container.replaceChildren(...FIELDS.map((field) => fieldRow(field, values, onChange)));
}

function fieldRow(field, values, onChange) {
  const row = document.createElement('label');
  row.className = `field field-${field.kind}`;
  row.dataset.key = field.key;
  if (field.needs) row.dataset.needs = field.needs;
  const name = document.createElement('span');
  name.textContent = field.label ?? field.key;
  const input = inputFor(field);
  input.name = field.key;
  const stored = values[field.key];
  if (field.kind === 'checkbox') input.checked = Boolean(stored);
  else input.value = stored ?? (field.kind === 'select' ? field.options[0] : '');
  input.addEventListener('input', () => {
    values[field.key] = field.kind === 'checkbox' ? input.checked : input.value;
    onChange(values, field.key);
  });
  const error = document.createElement('small');
  error.className = 'field-error';
  row.append(name, input, error);
  return row;
}

function inputFor(field) {
  if (field.kind === 'textarea' || field.kind === 'json' || field.kind === 'lines') {
    const area = document.createElement('textarea');
    area.rows = field.kind === 'textarea' ? 3 : 2;
    area.placeholder = field.placeholder ?? '';
    area.spellcheck = field.kind === 'textarea';
    return area;
  }
  if (field.kind === 'select') {
    const select = document.createElement('select');
    select.append(...field.options.map((value) => new Option(value || 'server default', value)));
    return select;
  }
  const input = document.createElement('input');
  input.type = field.kind === 'checkbox' ? 'checkbox' : field.kind === 'text' ? 'text' : 'number';
  if (field.kind === 'number' || field.kind === 'integer') {
    Object.assign(input, { min: field.min ?? '', max: field.max ?? '', step: field.step ?? 1 });
  }
  input.placeholder = field.placeholder ?? '';
  return input;
}

/** Shows only the fields the model can use. */
export function showFor(container, capabilities) {
  for (const row of container.querySelectorAll('[data-needs]')) {
    row.hidden = !capabilities[row.dataset.needs];
  }
}

/** The panel's values as {wire, system, detail, errors}: `wire` holds the request fields to send,
 *  `errors` maps a field's key to what is wrong with it. */
export function requestFields(values, capabilities) {
  const fields = {};
  const errors = {};
  for (const field of FIELDS) {
    if (field.needs && !capabilities[field.needs]) continue;
    const raw = values[field.key];
    if (raw === undefined || raw === '' || raw === false) continue;
    try {
      const value = parse(field, raw);
      if (value !== undefined) fields[field.key] = value;
    } catch (error) {
      errors[field.key] = error.message;
    }
  }
  return { ...wireShape(fields), errors };
}

function parse(field, raw) {
  switch (field.kind) {
    case 'number':
    case 'integer': {
      const value = Number(raw);
      if (!Number.isFinite(value) || (field.kind === 'integer' && !Number.isInteger(value))) {
        throw new Error(field.kind === 'integer' ? 'a whole number' : 'a number');
      }
      return value;
    }
    case 'json':
      try {
        return JSON.parse(raw);
      } catch (error) {
        throw new Error(`not JSON: ${error.message}`);
      }
    case 'lines':
      return raw.split('\n').filter((line) => line !== '');
    case 'checkbox':
      return Boolean(raw);
    default:
      return raw.trim() || undefined;
  }
}

/** Page-level fields (system, json_schema, image_detail, tool_choice by name) -> the wire's shape. */
function wireShape(fields) {
  const { system, json_schema: schema, image_detail: _detail, ...wire } = fields;
  if (wire.response_format === 'json_schema') {
    wire.response_format = { type: 'json_schema', json_schema: { name: 'answer', schema: schema ?? { type: 'object' } } };
  } else if (wire.response_format === 'json_object') {
    wire.response_format = { type: 'json_object' };
  } else {
    delete wire.response_format;
  }
  if (wire.tool_choice && !['auto', 'none', 'required'].includes(wire.tool_choice)) {
    wire.tool_choice = { type: 'function', function: { name: wire.tool_choice } };
  }
  if (wire.parallel_tool_calls) wire.parallel_tool_calls = wire.parallel_tool_calls === 'true';
  if (!wire.logprobs) delete wire.top_logprobs;
  if (!wire.tools?.length) {
    delete wire.tools;
    delete wire.tool_choice;
    delete wire.parallel_tool_calls;
  }
  return { wire, system: system ?? '', detail: fields.image_detail ?? 'auto' };
}
