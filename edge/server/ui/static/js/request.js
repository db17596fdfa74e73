// One request body per answer, and the streamed chunks folded back into the answer's message.
// Pure functions: the page's state comes in as arguments.

/** The Chat Completions body for the branch `history`, with the panel's fields in `request`. */
export function requestBody(history, request, { model, thinking }) {
  const messages = request.system ? [{ role: 'system', content: request.system }] : [];
  for (const message of history) {
    const wire = wireMessage(message, request.detail);
    if (wire) messages.push(wire);
  }
  const body = { model, messages, stream: true, stream_options: { include_usage: true }, ...request.wire };
  // enable_thinking wins over reasoning_effort on the server, so it is sent only without an effort
  if (thinking !== null && !request.wire.reasoning_effort) body.enable_thinking = thinking;
  return body;
}

function wireMessage(message, detail) {
  if (message.role === 'user') {
    if (!message.images?.length) return { role: 'user', content: message.content };
    const images = message.images.map((url) => ({ type: 'image_url', image_url: { url, detail } }));
    return { role: 'user', content: [...(message.content ? [{ type: 'text', text: message.content }] : []), ...images] };
  }
  if (message.role === 'tool') {
    return { role: 'tool', tool_call_id: message.tool_call_id, name: message.name, content: message.content };
  }
  if (!message.content && !message.tool_calls?.length) return null; // failed or stopped before a word
  const wire = { role: 'assistant', content: message.content || null };
  if (message.tool_calls?.length) {
    wire.tool_calls = message.tool_calls.map((call) => ({
      id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments },
    }));
    if (message.reasoning) wire.reasoning_content = message.reasoning;
  }
  return wire;
}

/** Folds one chunk into the message; true when it carried generated text. */
export function absorb(message, chunk) {
  if (chunk.usage) message.usage = chunk.usage;
  const choice = chunk.choices?.[0];
  if (!choice) return false;
  const delta = choice.delta ?? {};
  if (delta.reasoning_content) message.reasoning += delta.reasoning_content;
  if (delta.content) message.content += delta.content;
  for (const call of delta.tool_calls ?? []) {
    message.tool_calls ??= [];
    const known = message.tool_calls[call.index] ??= { id: '', name: '', arguments: '' };
    if (call.id) known.id = call.id;
    if (call.function?.name) known.name = call.function.name;
    known.arguments += call.function?.arguments ?? '';
  }
  for (const entry of choice.logprobs?.content ?? []) {
    (message.logprobs ??= []).push({
      token: entry.token, logprob: entry.logprob,
      top: (entry.top_logprobs ?? []).map((top) => ({ token: top.token, logprob: top.logprob })),
    });
  }
  if (choice.finish_reason) message.finish_reason = choice.finish_reason;
  return Boolean(delta.reasoning_content || delta.content || delta.tool_calls?.length);
}

/** Usage from the server, time to first token and decode speed as this browser saw them. */
export function figures(usage, clock, ended) {
  const stats = {};
  if (clock.first !== null) stats.ttft_ms = clock.first - clock.started;
  if (usage) {
    stats.prompt_tokens = usage.prompt_tokens;
    stats.completion_tokens = usage.completion_tokens;
    stats.cached_tokens = usage.prompt_tokens_details?.cached_tokens ?? 0;
    stats.reasoning_tokens = usage.completion_tokens_details?.reasoning_tokens ?? 0;
    if (clock.first !== null && usage.completion_tokens > 1 && ended > clock.first) {
      stats.tokens_per_second = (usage.completion_tokens - 1) / ((ended - clock.first) / 1000);
    }
  }
  return stats;
}
