// Messages -> DOM. Everything a model, a tool or a user wrote goes in as text (textContent) or through
// renderMarkdown's sanitizer; nothing here builds HTML from strings.
import { highlight, renderMarkdown, sanitize } from './markdown.js';
import { siblings } from './conversations.js';

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, action, title) {
  const node = element('button', 'action', label);
  node.type = 'button';
  node.dataset.action = action;
  if (title) node.title = title;
  return node;
}

/** One message's article; `ui` holds the view's own state (editing, open thoughts, token views). */
export function messageNode(conversation, message, ui, { last }) {
  const article = element('article', `message ${message.role}`);
  article.dataset.id = message.id;
  const bubble = element('div', 'bubble');
  if (ui.editing === message.id) bubble.append(editor(message));
  else if (message.role === 'user') bubble.append(...userContent(message));
  else if (message.role === 'tool') bubble.append(...toolResult(message));
  else bubble.append(...assistantContent(message, ui));
  article.append(bubble, meta(conversation, message, ui));
  if (last && message.role === 'assistant' && message.tool_calls?.length && !message.streaming) {
    article.append(toolAnswerForm(message));
  }
  return article;
}

function userContent(message) {
  const nodes = [];
  if (message.images?.length) {
    const strip = element('div', 'images');
    for (const url of message.images) {
      if (!url.startsWith('data:image/')) continue;
      const image = element('img');
      image.src = url;
      image.alt = 'attached image';
      strip.append(image);
    }
    nodes.push(strip);
  }
  nodes.push(element('div', 'text', message.content));
  return nodes;
}

function toolResult(message) {
  const head = element('div', 'tool-head');
  head.append('Result of ', element('code', '', message.name ?? 'tool'));
  return [head, element('pre', 'tool-body', message.content)];
}

function assistantContent(message, ui) {
  const nodes = [];
  if (message.reasoning) nodes.push(thinking(message, ui));
  if (message.content) {
    nodes.push(message.format === 'json' ? structured(message) : markdownBlock(message.content));
  } else if (message.streaming && !message.reasoning && !message.tool_calls?.length) {
    nodes.push(element('div', 'waiting', '…'));
  }
  for (const call of message.tool_calls ?? []) nodes.push(toolCall(call));
  if (ui.tokensShown.has(message.id) && message.logprobs?.length) nodes.push(tokens(message.logprobs));
  if (message.error) nodes.push(element('div', 'error', message.error));
  if (message.finish_reason === 'stopped') nodes.push(element('div', 'notice', 'stopped'));
  if (message.finish_reason === 'length') nodes.push(element('div', 'notice', 'max_tokens reached'));
  return nodes;
}

function markdownBlock(source) {
  const block = element('div', 'markdown');
  block.append(renderMarkdown(source));
  return block;
}

function thinking(message, ui) {
  const details = element('details', 'thinking');
  // open while the answer streams, folded once it is complete, unless the reader chose otherwise
  details.open = ui.thinkingOpen.get(message.id) ?? Boolean(message.streaming);
  const summary = element('summary', '', message.streaming ? 'Thinking…' : 'Thought');
  summary.addEventListener('click', () => ui.thinkingOpen.set(message.id, !details.open));
  details.append(summary, element('div', 'thinking-text', message.reasoning));
  return details;
}

/** A JSON-mode answer: pretty-printed when it parses, shown as it is while it streams or if it does not. */
function structured(message) {
  const box = element('div', 'structured');
  let pretty = null;
  try {
    pretty = JSON.stringify(JSON.parse(message.content), null, 2);
  } catch { /* incomplete or not JSON */ }
  const state = pretty !== null ? 'valid JSON' : message.streaming ? 'streaming…' : 'not valid JSON';
  box.append(element('div', 'structured-head', `Structured answer · ${state}`));
  const code = element('code', 'hljs');
  code.append(sanitize(highlight(pretty ?? message.content, 'json')));
  const pre = element('pre');
  pre.append(code);
  box.append(pre);
  box.dataset.valid = String(pretty !== null);
  return box;
}

function toolCall(call) {
  const box = element('div', 'tool-call');
  const head = element('div', 'tool-head');
  head.append('Tool call ', element('code', 'tool-name', call.name), element('small', '', call.id));
  let args = call.arguments;
  try {
    args = JSON.stringify(JSON.parse(call.arguments), null, 2);
  } catch { /* still streaming */ }
  box.append(head, element('pre', 'tool-body', args));
  return box;
}

function toolAnswerForm(message) {
  const form = element('div', 'tool-answers');
  form.append(element('div', 'tool-answers-head', 'Answer the tool calls by hand:'));
  for (const call of message.tool_calls) {
    const label = element('label', 'tool-answer');
    label.append(element('span', '', `${call.name} →`));
    const area = element('textarea');
    area.rows = 2;
    area.dataset.callId = call.id;
    area.placeholder = '{"result": ...} or any text';
    label.append(area);
    form.append(label);
  }
  form.append(button('Send results', 'tool-results'));
  return form;
}

function tokens(logprobs) {
  const box = element('div', 'tokens');
  for (const entry of logprobs) {
    const probability = Math.exp(entry.logprob);
    const token = element('span', 'token', entry.token);
    // hue from red (unlikely) to green (certain), set through CSSOM so the page's CSP holds
    token.style.backgroundColor = `hsl(${Math.round(probability * 120)} 70% 50% / 0.28)`;
    const alternatives = entry.top.map((top) => `${JSON.stringify(top.token)} ${(Math.exp(top.logprob) * 100).toFixed(1)}%`);
    token.title = [`p ${(probability * 100).toFixed(1)}%  logprob ${entry.logprob.toFixed(3)}`, ...alternatives].join('\n');
    box.append(token);
  }
  return box;
}

function editor(message) {
  const box = element('div', 'editor');
  const area = element('textarea');
  area.value = message.content;
  area.rows = Math.min(12, message.content.split('\n').length + 1);
  box.append(area, button('Save & send', 'save-edit'), button('Cancel', 'cancel-edit'));
  return box;
}

function meta(conversation, message, ui) {
  const bar = element('div', 'meta');
  const family = siblings(conversation, message);
  if (family.length > 1) {
    const position = family.indexOf(message);
    const nav = element('span', 'branches');
    const previous = button('‹', 'previous-branch', 'Previous version');
    const next = button('›', 'next-branch', 'Next version');
    previous.disabled = position === 0;
    next.disabled = position === family.length - 1;
    nav.append(previous, element('span', 'branch-count', `${position + 1}/${family.length}`), next);
    bar.append(nav);
  }
  if (message.role === 'user' && !message.streaming) bar.append(button('Edit', 'edit'));
  if (message.role === 'assistant' && !message.streaming) {
    bar.append(button('Regenerate', 'regenerate'));
    if (message.logprobs?.length) bar.append(button(ui.tokensShown.has(message.id) ? 'Text' : 'Tokens', 'tokens'));
  }
  if (message.streaming) bar.append(element('span', 'notice', 'writing… (Esc stops)'));
  if (message.role !== 'tool' && !message.streaming) bar.append(button('Copy', 'copy-message'));
  if (message.stats) bar.append(figures(message.stats));
  return bar;
}

function figures(stats) {
  const parts = [];
  const add = (name, text) => {
    const part = element('span', 'stat', text);
    part.dataset.stat = name;
    parts.push(part);
  };
  if (stats.completion_tokens !== undefined) add('tokens', `${stats.completion_tokens} tokens`);
  if (stats.prompt_tokens !== undefined) add('prompt', `${stats.prompt_tokens} prompt`);
  if (stats.cached_tokens !== undefined) add('cached', `${stats.cached_tokens} cached`);
  if (stats.reasoning_tokens) add('reasoning', `${stats.reasoning_tokens} thinking`);
  if (stats.ttft_ms !== undefined) add('ttft', `TTFT ${Math.round(stats.ttft_ms)} ms`);
  if (stats.tokens_per_second !== undefined) add('speed', `${stats.tokens_per_second.toFixed(1)} tok/s`);
  const box = element('span', 'stats');
  box.title = 'tokens from the server\'s usage; time to first token and decode speed measured in this browser';
  box.append(...parts);
  return box;
}

export function emptyState(model, capabilities) {
  const box = element('div', 'empty');
  box.append(element('h1', '', 'edge'));
  const can = ['text', ...['vision', 'tools', 'thinking'].filter((name) => capabilities[name])];
  box.append(element('p', '', model ? `${model} · ${can.join(' · ')}` : 'connecting…'));
  box.append(element('p', 'hint', 'Everything stays on this machine: the model runs here, conversations stay in this browser.'));
  return box;
}

export function conversationItem(conversation, active) {
  const item = element('li', active ? 'active' : '');
  item.dataset.id = conversation.id;
  const open = button(conversation.title, 'open-conversation');
  open.className = 'conversation-title';
  item.append(open, button('✎', 'rename-conversation', 'Rename'), button('✕', 'delete-conversation', 'Delete'));
  return item;
}
