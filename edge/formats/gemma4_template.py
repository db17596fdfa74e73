"""The project's own Jinja chat template in the Gemma 4 turn format.

It is written into the test model's tokenizer_config.json and into every GGUF the converter makes for a
checkpoint that carries no template. It reads the variables ``Gemma4Format.render`` passes
(gemma4_prompt.py: model turns as steps with ``tool_calls`` and ``tool_responses``, then a closing
message with the turn's text) and writes exactly what Google's own template writes for them; the
parity tests render one corpus of conversations through both and compare the tokens.

What it writes: ``<bos>``; a system turn when thinking is on (``<|think|>``), tools are declared or the
conversation starts with a system message; one ``<|turn>ROLE`` … ``<turn|>`` per turn, a model turn
holding its thought (only for calls after the last user turn), calls and results; and the generation
prompt, with an empty thought channel prefilled when thinking is off, unless the model is to continue
its own turn after a tool result. Declarations follow Google's layout field by field: description,
enum (strings), items (arrays), nullable, properties and required (objects), then the upper-cased type.
"""

from __future__ import annotations

GEMMA4_CHAT_TEMPLATE = r"""
{#- a value in Gemma's syntax; quote_keys: mapping keys inside <|"|> too (literals within declarations) -#}
{%- macro literal(v, quote_keys) -%}
{%- if v is string -%}{{- '<|"|>' ~ v ~ '<|"|>' -}}
{%- elif v is boolean -%}{{- 'true' if v else 'false' -}}
{%- elif v is mapping -%}
{{- '{' -}}
{%- for k, item in v | dictsort -%}
{{- ',' if not loop.first -}}{{- '<|"|>' ~ k ~ '<|"|>' if quote_keys else k -}}:{{- literal(item, quote_keys) -}}
{%- endfor -%}
{{- '}' -}}
{%- elif v is sequence -%}
{{- '[' -}}
{%- for item in v -%}{{- ',' if not loop.first -}}{{- literal(item, quote_keys) -}}{%- endfor -%}
{{- ']' -}}
{%- else -%}{{- v -}}
{%- endif -%}
{%- endmacro -%}

{#- key:value,... of a mapping, keys sorted, bare -#}
{%- macro entries(mapping) -%}
{%- for k, item in mapping | dictsort -%}{{- ',' if not loop.first -}}{{- k -}}:{{- literal(item, false) -}}{%- endfor -%}
{%- endmacro -%}

{%- macro quoted_list(names) -%}
{{- '[' -}}{%- for name in names -%}{{- ',' if not loop.first -}}{{- '<|"|>' ~ name ~ '<|"|>' -}}{%- endfor -%}{{- ']' -}}
{%- endmacro -%}

{#- an array's item schema: every field in key order, literals as they are -#}
{%- macro item_schema(schema) -%}
{%- set ns = namespace(sep='') -%}
{{- '{' -}}
{%- for key, value in schema | dictsort -%}
{%- if value is not none -%}
{{- ns.sep -}}{%- set ns.sep = ',' -%}
{%- if key == 'properties' -%}{{- 'properties:{' -}}{%- if value is mapping -%}{{- properties(value) -}}{%- endif -%}{{- '}' -}}
{%- elif key == 'required' -%}{{- 'required:' ~ quoted_list(value) -}}
{%- elif key == 'type' -%}{{- 'type:' ~ literal(value | upper if value is string else value | map('upper') | list, true) -}}
{%- else -%}{{- key ~ ':' ~ literal(value, true) -}}
{%- endif -%}
{%- endif -%}
{%- endfor -%}
{{- '}' -}}
{%- endmacro -%}

{#- one parameter: description, enum, items, nullable, properties + required, type -#}
{%- macro parameter(p) -%}
{%- set ns = namespace(sep='') -%}
{%- set kind = p['type'] | upper -%}
{{- '{' -}}
{%- if p['description'] -%}{{- 'description:<|"|>' ~ p['description'] ~ '<|"|>' -}}{%- set ns.sep = ',' -%}{%- endif -%}
{%- if kind == 'STRING' and p['enum'] -%}{{- ns.sep ~ 'enum:' ~ literal(p['enum'], true) -}}{%- set ns.sep = ',' -%}
{%- elif kind == 'ARRAY' and p['items'] is mapping and p['items'] -%}{{- ns.sep ~ 'items:' ~ item_schema(p['items']) -}}{%- set ns.sep = ',' -%}
{%- endif -%}
{%- if p['nullable'] -%}{{- ns.sep ~ 'nullable:true' -}}{%- set ns.sep = ',' -%}{%- endif -%}
{%- if kind == 'OBJECT' -%}
{{- ns.sep ~ 'properties:{' ~ properties(p['properties']) ~ '}' -}}{%- set ns.sep = ',' -%}
{%- if p['required'] -%}{{- ',required:' ~ quoted_list(p['required']) -}}{%- endif -%}
{%- endif -%}
{{- ns.sep ~ 'type:<|"|>' ~ kind ~ '<|"|>}' -}}
{%- endmacro -%}

{%- macro properties(mapping) -%}
{%- for name, p in mapping | dictsort -%}{{- ',' if not loop.first -}}{{- name ~ ':' ~ parameter(p) -}}{%- endfor -%}
{%- endmacro -%}

{%- macro declaration(f) -%}
{{- 'declaration:' ~ f['name'] ~ '{description:<|"|>' ~ f['description'] ~ '<|"|>' -}}
{%- set params = f['parameters'] -%}
{%- if params -%}
{{- ',parameters:{' -}}
{%- if params['properties'] -%}{{- 'properties:{' ~ properties(params['properties']) ~ '},' -}}{%- endif -%}
{%- if params['required'] -%}{{- 'required:' ~ quoted_list(params['required']) ~ ',' -}}{%- endif -%}
{{- 'type:<|"|>' ~ params['type'] | upper ~ '<|"|>}' -}}
{%- endif -%}
{{- '}' -}}
{%- endmacro -%}

{#- a past model turn's text without its thought channels -#}
{%- macro visible(text) -%}
{%- set ns = namespace(out='') -%}
{%- for part in text.split('<channel|>') -%}{%- set ns.out = ns.out + part.split('<|channel>')[0] -%}{%- endfor -%}
{{- ns.out | trim -}}
{%- endmacro -%}

{{- bos_token -}}
{%- set thinking = enable_thinking is defined and enable_thinking -%}
{%- set rest = messages -%}
{%- set leading_system = messages and messages[0]['role'] in ['system', 'developer'] -%}
{%- if thinking or tools or leading_system -%}
{{- '<|turn>system\n' -}}
{%- if thinking -%}{{- '<|think|>\n' -}}{%- endif -%}
{%- if leading_system -%}{{- messages[0]['content'] | trim -}}{%- set rest = messages[1:] -%}{%- endif -%}
{%- for tool in tools or [] -%}{{- '<|tool>' ~ declaration(tool['function']) ~ '<tool|>' -}}{%- endfor -%}
{{- '<turn|>\n' -}}
{%- endif -%}

{#- ns.last: the role of the previous message that is not a tool result (an assistant one continues the
    model turn); ns.after: what the turn ended with (a call, a result, an image) -#}
{%- set ns = namespace(last='', after=none, last_user=-1) -%}
{%- for m in rest -%}{%- if m['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}
{%- for m in rest -%}
{%- if m['role'] != 'tool' -%}
{%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}
{%- if not (role == 'model' and ns.last == 'assistant') -%}{{- '<|turn>' ~ role ~ '\n' -}}{%- endif -%}
{%- set ns.last = m['role'] -%}
{%- set ns.after = none -%}
{%- set thought = m['reasoning'] or m['reasoning_content'] -%}
{%- if thought and m['tool_calls'] and loop.index0 > ns.last_user -%}
{{- '<|channel>thought\n' ~ thought ~ '\n<channel|>' -}}
{%- endif -%}
{%- for call in m['tool_calls'] or [] -%}
{%- set f = call['function'] -%}
{{- '<|tool_call>call:' ~ f['name'] ~ '{' -}}
{%- if f['arguments'] is mapping -%}{{- entries(f['arguments']) -}}{%- elif f['arguments'] is string -%}{{- f['arguments'] -}}{%- endif -%}
{{- '}<tool_call|>' -}}
{%- set ns.after = 'tool_call' -%}
{%- endfor -%}
{%- for r in m['tool_responses'] or [] -%}
{{- '<|tool_response>response:' ~ r['name'] ~ '{' -}}
{%- if r['response'] is mapping -%}{{- entries(r['response']) -}}{%- else -%}{{- 'value:' ~ literal(r['response'], false) -}}{%- endif -%}
{{- '}<tool_response|>' -}}
{%- set ns.after = 'tool_response' -%}
{%- endfor -%}
{%- if m['content'] is string -%}
{{- visible(m['content']) if role == 'model' else m['content'] | trim -}}
{%- elif m['content'] is sequence -%}
{%- for part in m['content'] -%}
{%- if part['type'] == 'text' -%}{{- visible(part['text']) if role == 'model' else part['text'] | trim -}}
{%- elif part['type'] in ['image', 'audio', 'video'] -%}{{- '<|' ~ part['type'] ~ '|>' -}}{%- set ns.after = part['type'] -%}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- if ns.after == 'tool_call' -%}{{- '<|tool_response>' -}}
{%- elif not (m['tool_responses'] and not m['content']) -%}{{- '<turn|>\n' -}}
{%- endif -%}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt and ns.after not in ['tool_call', 'tool_response'] -%}
{{- '<|turn>model\n' -}}
{%- if not thinking -%}{{- '<|channel>thought\n<channel|>' -}}{%- endif -%}
{%- endif -%}
""".strip()
