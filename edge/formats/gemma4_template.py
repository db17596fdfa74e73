"""The project's own Jinja chat template in the Gemma 4 turn format.

It is written into the test model's tokenizer_config.json and into every GGUF the converter makes for a
checkpoint that carries no template. Supported: system/developer turns, thinking on (``enable_thinking``)
and off (an empty thought channel is prefilled), tool declarations, tool calls with mapping or string
arguments, tool results (OpenAI ``role: tool`` messages) folded into the calling model turn, images,
audio and video placeholders, and past model turns with their thoughts stripped.
"""

from __future__ import annotations

GEMMA4_CHAT_TEMPLATE = r"""
{%- macro value(v) -%}
{%- if v is string -%}<|"|>{{ v }}<|"|>
{%- elif v is boolean -%}{{ 'true' if v else 'false' }}
{%- elif v is none -%}null
{%- elif v is mapping -%}{ {%- for k, item in v | dictsort -%}{{ k }}:{{ value(item) }}{{ ',' if not loop.last }}{%- endfor -%} }
{%- elif v is iterable -%}[ {%- for item in v -%}{{ value(item) }}{{ ',' if not loop.last }}{%- endfor -%} ]
{%- else -%}{{ v }}
{%- endif -%}
{%- endmacro -%}
{%- macro schema(s) -%}
{ {%- set ns = namespace(sep='') -%}
{%- for k, item in s | dictsort -%}
{%- if k == 'type' -%}{{ ns.sep }}type:<|"|>{{ item | upper }}<|"|>
{%- elif k == 'properties' -%}{{ ns.sep }}properties:{ {%- for pk, pv in item | dictsort -%}{{ pk }}:{{ schema(pv) }}{{ ',' if not loop.last }}{%- endfor -%} }
{%- elif k == 'items' -%}{{ ns.sep }}items:{{ schema(item) }}
{%- else -%}{{ ns.sep }}{{ k }}:{{ value(item) }}
{%- endif -%}
{%- set ns.sep = ',' -%}
{%- endfor -%} }
{%- endmacro -%}
{%- macro visible(text) -%}
{%- set ns = namespace(out='') -%}
{%- for part in text.split('<channel|>') -%}
{%- set ns.out = ns.out + part.split('<|channel>')[0] -%}
{%- endfor -%}
{{ ns.out | trim }}
{%- endmacro -%}
{%- macro content(message, role) -%}
{%- if message.content is string -%}
{{ visible(message.content) if role == 'model' else message.content | trim }}
{%- elif message.content is iterable -%}
{%- for part in message.content -%}
{%- if part.type == 'text' -%}{{ visible(part.text) if role == 'model' else part.text | trim }}
{%- elif part.type in ['image', 'image_url'] -%}<|image|>
{%- elif part.type in ['audio', 'input_audio'] -%}<|audio|>
{%- elif part.type == 'video' -%}<|video|>
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- macro tool_result(name, result) -%}
<|tool_response>response:{{ name }}{%- if result is mapping -%}{{ value(result) }}{%- else -%}{value:{{ value(result) }}}{%- endif -%}<tool_response|>
{%- endmacro -%}
{{- bos_token -}}
{%- set thinking = enable_thinking is defined and enable_thinking -%}
{%- set rest = messages -%}
{%- if thinking or tools or (messages and messages[0].role in ['system', 'developer']) -%}
<|turn>system
{% if thinking %}<|think|>
{% endif -%}
{%- if messages and messages[0].role in ['system', 'developer'] -%}
{{ content(messages[0], 'system') }}
{%- set rest = messages[1:] -%}
{%- endif -%}
{%- for tool in tools or [] -%}
{%- set f = tool.function if tool.function is defined else tool -%}
<|tool>declaration:{{ f.name }}{description:<|"|>{{ f.description or '' }}<|"|>{%- if f.parameters -%},parameters:{{ schema(f.parameters) }}{%- endif -%}}<tool|>
{%- endfor -%}
<turn|>
{% endif -%}
{%- set ns = namespace(last_user=-1, open_model=false) -%}
{%- for m in rest -%}{%- if m.role == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}
{%- for m in rest -%}
{%- if m.role == 'tool' -%}
{%- set ns.open_model = true -%}
{{ tool_result(m.name or 'unknown', m.content) }}
{%- else -%}
{%- set role = 'model' if m.role == 'assistant' else m.role -%}
{%- if ns.open_model and role == 'model' -%}
{%- else -%}
{%- if ns.open_model -%}<turn|>
{% endif -%}
<|turn>{{ role }}
{% endif -%}
{%- set ns.open_model = false -%}
{%- set thought = m.reasoning_content or m.reasoning -%}
{%- if role == 'model' and thought and m.tool_calls and loop.index0 > ns.last_user -%}
<|channel>thought
{{ thought }}<channel|>
{%- endif -%}
{{ content(m, role) }}
{%- for call in m.tool_calls or [] -%}
{%- set f = call.function if call.function is defined else call -%}
<|tool_call>call:{{ f.name }}{%- if f.arguments is mapping -%}{{ value(f.arguments) }}{%- else -%}{{ f.arguments }}{%- endif -%}<tool_call|>
{%- endfor -%}
{%- if m.tool_calls -%}
{%- set ns.open_model = true -%}
{%- else -%}
<turn|>
{% endif -%}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{%- if ns.open_model -%}
{%- else -%}
<|turn>model
{% if not thinking %}<|channel>thought
<channel|>{% endif -%}
{%- endif -%}
{%- elif ns.open_model -%}<turn|>
{% endif -%}
""".strip()
