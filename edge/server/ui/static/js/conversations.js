// Conversations live in this browser's IndexedDB. Each one is a tree of messages: editing a message or
// regenerating an answer adds a sibling, so every branch is kept; `leaf` is the end of the branch shown.

const DB_NAME = 'edge-chat';
const STORE = 'conversations';
export const EXPORT_FORMAT = 'edge-chat';
const ROLES = new Set(['user', 'assistant', 'tool']);

let database;

function openDatabase() {
  database ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'id' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return database;
}

async function transact(mode, operation) {
  const db = await openDatabase();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(STORE, mode);
    const request = operation(transaction.objectStore(STORE));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = () => reject(transaction.error);
  });
}

export const storage = {
  all: async () => (await transact('readonly', (store) => store.getAll())).sort((a, b) => b.updated - a.updated),
  save: (conversation) => transact('readwrite', (store) => store.put(conversation)),
  remove: (id) => transact('readwrite', (store) => store.delete(id)),
};

const uid = () => crypto.randomUUID();

export function newConversation() {
  const now = Date.now();
  return { id: uid(), title: 'New chat', created: now, updated: now, messages: {}, leaf: null };
}

/** Adds a message under `parent` (null: a first message) and makes it the end of the shown branch. */
export function addMessage(conversation, parent, fields) {
  const message = { id: uid(), parent, created: Date.now(), content: '', ...fields };
  conversation.messages[message.id] = message;
  conversation.leaf = message.id;
  conversation.updated = message.created;
  return message;
}

/** The messages from the first one down to `leaf`. */
export function branch(conversation, leaf = conversation.leaf) {
  const path = [];
  for (let id = leaf; id && conversation.messages[id]; id = conversation.messages[id].parent) {
    path.unshift(conversation.messages[id]);
  }
  return path;
}

const byCreated = (a, b) => a.created - b.created;

export function siblings(conversation, message) {
  return Object.values(conversation.messages).filter((m) => m.parent === message.parent).sort(byCreated);
}

/** Shows the branch through `id`, down to its most recent descendant. */
export function showBranch(conversation, id) {
  let current = id;
  for (;;) {
    const children = Object.values(conversation.messages).filter((m) => m.parent === current).sort(byCreated);
    if (!children.length) break;
    current = children.at(-1).id;
  }
  conversation.leaf = current;
}

export function matches(conversation, query) {
  const needle = query.trim().toLowerCase();
  if (!needle) return true;
  return conversation.title.toLowerCase().includes(needle) ||
    Object.values(conversation.messages).some((m) => m.content.toLowerCase().includes(needle));
}

export function exportJson(conversations) {
  return JSON.stringify({ format: EXPORT_FORMAT, version: 1, conversations }, null, 2);
}

/** Parses an export, rebuilding every conversation from the fields the page knows, with their types
 *  checked, so a hand-edited or hostile file can only ever carry text. */
export function importJson(text) {
  const data = JSON.parse(text);
  if (data?.format !== EXPORT_FORMAT || !Array.isArray(data.conversations)) {
    throw new Error(`not an ${EXPORT_FORMAT} export: expected {"format": "${EXPORT_FORMAT}", "conversations": [...]}`);
  }
  return data.conversations.map((raw, index) => cleanConversation(raw, `conversations[${index}]`));
}

function cleanConversation(raw, where) {
  const messages = {};
  for (const [id, message] of Object.entries(object(raw.messages, `${where}.messages`))) {
    messages[id] = cleanMessage(message, id, `${where}.messages.${id}`);
  }
  const conversation = {
    id: text(raw.id, `${where}.id`), title: text(raw.title, `${where}.title`),
    created: number(raw.created), updated: number(raw.updated), messages,
    leaf: raw.leaf === null ? null : text(raw.leaf, `${where}.leaf`),
  };
  if (conversation.leaf !== null && !messages[conversation.leaf]) throw new Error(`${where}.leaf names no message`);
  return conversation;
}

function cleanMessage(raw, id, where) {
  object(raw, where);
  if (!ROLES.has(raw.role)) throw new Error(`${where}.role must be user, assistant or tool`);
  const message = {
    id, parent: raw.parent === null ? null : text(raw.parent, `${where}.parent`), role: raw.role,
    created: number(raw.created), content: text(raw.content ?? '', `${where}.content`),
  };
  for (const key of ['reasoning', 'tool_call_id', 'name', 'finish_reason', 'error', 'format']) {
    if (raw[key] != null) message[key] = text(raw[key], `${where}.${key}`);
  }
  if (raw.images != null) message.images = list(raw.images, `${where}.images`).map((url) => dataImage(url, where));
  if (raw.tool_calls != null) {
    message.tool_calls = list(raw.tool_calls, `${where}.tool_calls`).map((call) => ({
      id: text(call.id, `${where}.tool_calls.id`), name: text(call.name, `${where}.tool_calls.name`),
      arguments: text(call.arguments, `${where}.tool_calls.arguments`),
    }));
  }
  if (raw.stats != null) {
    message.stats = Object.fromEntries(Object.entries(object(raw.stats, `${where}.stats`))
      .filter(([, value]) => typeof value === 'number'));
  }
  if (raw.logprobs != null) {
    message.logprobs = list(raw.logprobs, `${where}.logprobs`).map((entry) => ({
      token: text(entry.token, `${where}.logprobs.token`), logprob: number(entry.logprob),
      top: list(entry.top ?? [], `${where}.logprobs.top`).map((t) => ({ token: text(t.token, where), logprob: number(t.logprob) })),
    }));
  }
  return message;
}

function text(value, where) {
  if (typeof value !== 'string') throw new Error(`${where} must be a string`);
  return value;
}

function number(value) {
  return Number.isFinite(value) ? value : 0;
}

function object(value, where) {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${where} must be an object`);
  return value;
}

function list(value, where) {
  if (!Array.isArray(value)) throw new Error(`${where} must be a list`);
  return value;
}

function dataImage(url, where) {
  if (typeof url !== 'string' || !/^data:image\/[a-z0-9.+-]+;base64,/i.test(url)) {
    throw new Error(`${where}.images holds something other than a data:image URL`);
  }
  return url;
}
