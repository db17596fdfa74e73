// The chat page: wires the DOM to the API, the conversation store and the parameter panel.
import { ApiError, apiKey, listModels, pageConfig, streamChat } from './api.js';
import {
  addMessage, branch, exportJson, importJson, matches, newConversation, showBranch, siblings, storage,
} from './conversations.js';
import { ask } from './dialog.js';
import { bindDrop, dataUrl, imageFiles } from './images.js';
import { buildPanel, loadValues, requestFields, saveValues, showFor } from './params.js';
import { absorb, figures, requestBody } from './request.js';
import { applyTheme, nextTheme } from './theme.js';
import { conversationItem, emptyState, messageNode } from './view.js';

const $ = (id) => document.getElementById(id);
const NO_CAPABILITIES = { vision: false, tools: false, thinking: false };

const state = {
  conversations: [],
  current: newConversation(),
  models: [],
  model: null,
  params: loadValues(),
  attachments: [], // data: URLs waiting to be sent with the next message
  generating: null, // {controller, message} while an answer streams
  ui: { editing: null, thinkingOpen: new Map(), tokensShown: new Set() },
};

const capabilities = () => state.model?.capabilities ?? NO_CAPABILITIES;

// -- start ----------------------------------------------------------------------------------------

async function start() {
  applyTheme();
  buildPanel($('param-fields'), state.params, onParamsChange);
  bindEvents();
  const config = await pageConfig();
  $('forget-key').hidden = !config.api_key_required;
  if (config.api_key_required && !apiKey.get()) await askForKey('This server needs an API key (edge serve --api-key).');
  await loadModels();
  state.conversations = await storage.all();
  if (state.conversations.length) state.current = state.conversations[0];
  renderAll();
  $('input').focus();
}

async function loadModels() {
  for (;;) {
    try {
      state.models = await listModels();
      break;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        hint(`cannot reach the server: ${error.message}`);
        return;
      }
      apiKey.forget();
      await askForKey('The server refused that API key. Enter it again:');
    }
  }
  const select = $('model');
  select.replaceChildren(...state.models.map((model) => new Option(model.id, model.id)));
  state.model = state.models.find((model) => model.id === state.params.model) ?? state.models[0] ?? null;
  if (state.model) select.value = state.model.id;
  onModelChange();
}

function onModelChange() {
  const can = capabilities();
  const badges = [can.vision && 'vision', can.tools && 'tools', can.thinking && 'thinking',
    can.context_size && `${can.context_size} ctx`].filter(Boolean);
  $('badges').replaceChildren(...badges.map((text) => Object.assign(document.createElement('span'), { className: 'badge', textContent: text })));
  $('attach').hidden = !can.vision;
  $('thinking-switch').hidden = !can.thinking;
  $('thinking').checked = thinkingOn();
  showFor($('param-fields'), can);
  if (!state.current.leaf) renderMessages();
}

// -- sending and streaming ------------------------------------------------------------------------

async function send() {
  if (state.generating) return;
  const input = $('input');
  const text = input.value.trim();
  if (!text && !state.attachments.length) return;
  const request = readRequest();
  if (!request) return;
  const conversation = state.current;
  addMessage(conversation, conversation.leaf, { role: 'user', content: text, images: [...state.attachments] });
  if (conversation.title === 'New chat') conversation.title = titleFrom(text);
  input.value = '';
  autosize();
  state.attachments = [];
  renderAttachments();
  await generate(conversation, request);
}

function titleFrom(text) {
  const line = text.split('\n').find((l) => l.trim()) ?? 'Image';
  return line.length > 60 ? `${line.slice(0, 57)}…` : line;
}

/** The panel's request fields, or null (with the bad fields marked) when one cannot be sent. */
function readRequest() {
  const request = requestFields(state.params, capabilities());
  for (const row of document.querySelectorAll('#param-fields .field')) {
    row.querySelector('.field-error').textContent = request.errors[row.dataset.key] ?? '';
    row.classList.toggle('invalid', Boolean(request.errors[row.dataset.key]));
  }
  if (Object.keys(request.errors).length) {
    hint(`fix the parameter ${Object.keys(request.errors)[0]} first`);
    openDrawer('params');
    return null;
  }
  return request;
}

/** Streams an answer to the end of the conversation's shown branch. */
async function generate(conversation, request) {
  const history = branch(conversation);
  await storage.save(conversation); // what the user wrote is kept even if the page closes mid-answer
  state.conversations = await storage.all();
  const message = addMessage(conversation, conversation.leaf, {
    role: 'assistant', content: '', reasoning: '', streaming: true,
    ...(request.wire.response_format ? { format: 'json' } : {}),
  });
  const controller = new AbortController();
  state.generating = { controller, message };
  const clock = { started: performance.now(), first: null };
  renderAll();
  try {
    const body = requestBody(history, request, { model: state.model?.id, thinking: capabilities().thinking ? thinkingOn() : null });
    for await (const chunk of streamChat(body, controller.signal)) {
      if (absorb(message, chunk)) clock.first ??= performance.now();
      scheduleRender(message);
    }
  } catch (error) {
    if (error.name === 'AbortError') message.finish_reason = 'stopped';
    else message.error = describe(error);
    if (error.status === 401) apiKey.forget();
  } finally {
    message.stats = figures(message.usage, clock, performance.now());
    delete message.usage;
    delete message.streaming;
    state.generating = null;
    await storage.save(conversation);
    state.conversations = await storage.all();
    renderAll();
  }
}

function describe(error) {
  if (error instanceof ApiError) return error.param ? `${error.message} (parameter ${error.param})` : error.message;
  return `the request failed: ${error.message}`;
}

function stop() {
  state.generating?.controller.abort();
}

// -- message actions ------------------------------------------------------------------------------

async function onMessageAction(action, message, article) {
  const conversation = state.current;
  if (action === 'copy-message') return copy(message.content);
  if (action === 'tokens') {
    toggle(state.ui.tokensShown, message.id);
    return renderMessages();
  }
  if (action === 'previous-branch' || action === 'next-branch') {
    const family = siblings(conversation, message);
    const next = family[family.indexOf(message) + (action === 'next-branch' ? 1 : -1)];
    if (next) showBranch(conversation, next.id);
    await storage.save(conversation);
    return renderMessages();
  }
  if (state.generating) return hint('wait for the answer, or stop it (Esc)');
  if (action === 'edit') {
    state.ui.editing = message.id;
    renderMessages();
    return $('messages').querySelector(`[data-id="${CSS.escape(message.id)}"] .editor textarea`).focus();
  }
  if (action === 'cancel-edit') {
    state.ui.editing = null;
    return renderMessages();
  }
  const request = readRequest();
  if (!request) return;
  if (action === 'save-edit') {
    state.ui.editing = null;
    const content = article.querySelector('.editor textarea').value.trim();
    addMessage(conversation, message.parent, { role: 'user', content, images: message.images ?? [] });
  } else if (action === 'regenerate') {
    conversation.leaf = message.parent;
  } else if (action === 'tool-results') {
    for (const area of article.querySelectorAll('.tool-answers textarea')) {
      const call = message.tool_calls.find((c) => c.id === area.dataset.callId);
      addMessage(conversation, conversation.leaf, { role: 'tool', tool_call_id: call.id, name: call.name, content: area.value });
    }
  } else {
    return;
  }
  await generate(conversation, request);
}

function toggle(set, value) {
  if (set.has(value)) set.delete(value);
  else set.add(value);
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    hint('copied');
  } catch {
    hint('the browser refused the clipboard (it needs https or localhost)');
  }
}

// -- conversations --------------------------------------------------------------------------------

async function onConversationAction(action, id) {
  const conversation = state.conversations.find((c) => c.id === id);
  if (!conversation) return;
  if (action === 'open-conversation') {
    state.current = conversation;
    closeDrawers();
  } else if (action === 'rename-conversation') {
    const title = await ask({ text: 'Rename the conversation:', value: conversation.title });
    if (!title?.trim()) return;
    conversation.title = title.trim();
    await storage.save(conversation);
  } else if (action === 'delete-conversation') {
    if (await ask({ text: `Delete “${conversation.title}”? This cannot be undone.`, confirm: true }) === null) return;
    if (state.generating?.message && conversation.messages[state.generating.message.id]) stop();
    await storage.remove(id);
    if (state.current.id === id) state.current = newConversation();
  }
  state.conversations = await storage.all();
  renderAll();
}

function newChat() {
  if (state.generating) stop();
  state.current = newConversation();
  closeDrawers();
  renderAll();
  $('input').focus();
}

function exportAll() {
  const blob = new Blob([exportJson(state.conversations)], { type: 'application/json' });
  const link = Object.assign(document.createElement('a'), {
    href: URL.createObjectURL(blob), download: `edge-conversations-${new Date().toISOString().slice(0, 10)}.json`,
  });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function importFile(file) {
  try {
    const imported = importJson(await file.text());
    for (const conversation of imported) await storage.save(conversation);
    state.conversations = await storage.all();
    if (imported.length) state.current = state.conversations.find((c) => c.id === imported[0].id);
    hint(`imported ${imported.length} conversation${imported.length === 1 ? '' : 's'}`);
    renderAll();
  } catch (error) {
    hint(`cannot import: ${error.message}`);
  }
}

// -- images ---------------------------------------------------------------------------------------

async function attach(files) {
  const images = imageFiles(files);
  if (!images.length) return;
  if (!capabilities().vision) return hint('this model has no vision projector: it cannot read images');
  for (const file of images) state.attachments.push(await dataUrl(file));
  renderAttachments();
}

function renderAttachments() {
  $('attachments').replaceChildren(...state.attachments.map((url, index) => {
    const item = document.createElement('div');
    item.className = 'attachment';
    const image = Object.assign(document.createElement('img'), { src: url, alt: `image ${index + 1}` });
    const remove = Object.assign(document.createElement('button'), { type: 'button', textContent: '×', title: 'Remove' });
    remove.addEventListener('click', () => {
      state.attachments.splice(index, 1);
      renderAttachments();
    });
    item.append(image, remove);
    return item;
  }));
}

// -- parameters and thinking ---------------------------------------------------------------------

function thinkingOn() {
  const effort = state.params.reasoning_effort;
  if (effort) return effort === 'medium' || effort === 'high';
  return state.params.thinking !== false;
}

function onParamsChange(values, key) {
  if (key === 'reasoning_effort') $('thinking').checked = thinkingOn();
  saveValues(values);
}

function onThinkingSwitch() {
  state.params.thinking = $('thinking').checked;
  state.params.reasoning_effort = ''; // the switch wins; an effort would contradict it
  const effort = document.querySelector('#param-fields [name="reasoning_effort"]');
  if (effort) effort.value = '';
  saveValues(state.params);
}

// -- rendering ------------------------------------------------------------------------------------

function renderAll() {
  renderConversations();
  renderMessages();
  const busy = Boolean(state.generating);
  $('send').hidden = busy;
  $('stop').hidden = !busy;
}

function renderConversations() {
  const query = $('search').value;
  const shown = state.conversations.filter((conversation) => matches(conversation, query));
  $('conversations').replaceChildren(...shown.map((c) => conversationItem(c, c.id === state.current.id)));
}

function renderMessages() {
  const container = $('messages');
  const path = branch(state.current);
  if (!path.length) return container.replaceChildren(emptyState(state.model?.id, capabilities()));
  const follow = nearBottom(container);
  container.replaceChildren(...path.map((message, index) =>
    messageNode(state.current, message, state.ui, { last: index === path.length - 1 })));
  if (follow) container.scrollTop = container.scrollHeight;
}

let pending = null;

/** Re-renders one streaming message at most once per frame. */
function scheduleRender(message) {
  if (pending) return;
  pending = requestAnimationFrame(() => {
    pending = null;
    const container = $('messages');
    const old = container.querySelector(`[data-id="${CSS.escape(message.id)}"]`);
    if (!old) return;
    const follow = nearBottom(container);
    old.replaceWith(messageNode(state.current, message, state.ui, { last: true }));
    if (follow) container.scrollTop = container.scrollHeight;
  });
}

function nearBottom(container) {
  return container.scrollHeight - container.scrollTop - container.clientHeight < 80;
}

function autosize() {
  const input = $('input');
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, window.innerHeight * 0.4)}px`;
}

let hintTimer;

function hint(text) {
  $('hint').textContent = text;
  clearTimeout(hintTimer);
  hintTimer = setTimeout(() => { $('hint').textContent = ''; }, 6000);
}

function openDrawer(id) {
  $(id).classList.add('open');
}

function closeDrawers() {
  for (const drawer of document.querySelectorAll('.drawer')) drawer.classList.remove('open');
}

async function askForKey(text) {
  let key = null;
  while (!key) key = (await ask({ text, password: true }))?.trim();
  apiKey.set(key);
}

// -- events ---------------------------------------------------------------------------------------

function bindEvents() {
  const input = $('input');
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  input.addEventListener('input', autosize);
  input.addEventListener('paste', (event) => {
    const files = [...event.clipboardData.files];
    if (imageFiles(files).length) {
      event.preventDefault();
      attach(files);
    }
  });
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || $('dialog').open) return;
    event.preventDefault();
    if (state.generating) stop();
    else closeDrawers();
  });
  bindDrop($('drop-overlay'), attach);
  $('send').addEventListener('click', send);
  $('stop').addEventListener('click', stop);
  $('attach').addEventListener('click', () => $('attach-file').click());
  $('attach-file').addEventListener('change', (event) => {
    attach(event.target.files);
    event.target.value = '';
  });
  $('thinking').addEventListener('change', onThinkingSwitch);
  $('model').addEventListener('change', () => {
    state.model = state.models.find((model) => model.id === $('model').value);
    state.params.model = state.model.id;
    saveValues(state.params);
    onModelChange();
  });
  $('new-chat').addEventListener('click', newChat);
  $('search').addEventListener('input', renderConversations);
  $('export').addEventListener('click', exportAll);
  $('import').addEventListener('click', () => $('import-file').click());
  $('import-file').addEventListener('change', (event) => {
    if (event.target.files[0]) importFile(event.target.files[0]);
    event.target.value = '';
  });
  $('theme').addEventListener('click', nextTheme);
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', applyTheme);
  $('toggle-sidebar').addEventListener('click', () => $('sidebar').classList.toggle('open'));
  $('toggle-params').addEventListener('click', () => $('params').classList.toggle('open'));
  $('reset-params').addEventListener('click', () => {
    const keep = { model: state.params.model };
    state.params = keep;
    saveValues(keep);
    buildPanel($('param-fields'), state.params, onParamsChange);
    onModelChange();
  });
  $('forget-key').addEventListener('click', async () => {
    apiKey.forget();
    await askForKey('Enter the API key:');
  });
  $('conversations').addEventListener('click', (event) => {
    const target = event.target.closest('[data-action]');
    if (target) onConversationAction(target.dataset.action, target.closest('li').dataset.id);
  });
  $('messages').addEventListener('click', (event) => {
    const copyButton = event.target.closest('.copy');
    if (copyButton) return copy(copyButton.closest('.code').querySelector('code').textContent);
    const target = event.target.closest('[data-action]');
    const article = event.target.closest('article');
    if (target && article) onMessageAction(target.dataset.action, state.current.messages[article.dataset.id], article);
  });
}

start();
