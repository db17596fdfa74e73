// The server's HTTP API as the page uses it: the model list and streamed chat completions.
// The API key (edge serve --api-key) is asked for once and kept in this browser's localStorage.

const KEY = 'edge.apiKey';

export class ApiError extends Error {
  constructor(status, message, param = null) {
    super(message);
    this.status = status;
    this.param = param;
  }
}

export const apiKey = {
  get: () => localStorage.getItem(KEY),
  set: (value) => localStorage.setItem(KEY, value),
  forget: () => localStorage.removeItem(KEY),
};

function headers() {
  const result = { 'Content-Type': 'application/json' };
  const key = apiKey.get();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let param = null;
  try {
    const body = await response.json();
    message = body.error?.message ?? message;
    param = body.error?.param ?? null;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message, param);
}

/** What the page needs before its first API call (whether a key is required). */
export async function pageConfig() {
  const response = await fetch('/ui/config.json');
  return response.ok ? response.json() : { api_key_required: false };
}

export async function listModels() {
  const response = await fetch('/v1/models', { headers: headers() });
  if (!response.ok) throw await failure(response);
  return (await response.json()).data;
}

/** POST /v1/chat/completions with stream: true; yields each chunk. Aborting `signal` closes the
 *  connection, and the server stops generating at its next token. */
export async function* streamChat(body, signal) {
  const response = await fetch('/v1/chat/completions', {
    method: 'POST', headers: headers(), body: JSON.stringify(body), signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const data = sseData(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (data === '[DONE]') return;
      if (!data) continue;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(500, chunk.error.message, chunk.error.param);
      yield chunk;
    }
  }
}

function sseData(frame) {
  return frame.split('\n').filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).trimStart()).join('\n');
}
