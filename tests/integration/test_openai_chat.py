"""The real server on the demo model, driven by the official openai SDK."""

from __future__ import annotations

import concurrent.futures

import pytest

PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]


def complete(client, model, **kwargs):
    return client.chat.completions.create(model=model, messages=kwargs.pop("messages", PROMPT), **kwargs)


def stream_text(client, model, **kwargs):
    chunks = list(client.chat.completions.create(model=model, messages=kwargs.pop("messages", PROMPT),
                                                 stream=True, **kwargs))
    text = "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
    return text, chunks


def test_models_lists_the_served_model(openai_client, demo_model_id):
    models = openai_client.models.list()
    assert [model.id for model in models.data] == [demo_model_id]
    assert openai_client.models.retrieve(demo_model_id).id == demo_model_id


def test_plain_completion(openai_client, demo_model_id):
    response = complete(openai_client, demo_model_id, max_tokens=12, seed=1)
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.model == demo_model_id
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert response.usage.completion_tokens <= 12
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_streaming_matches_non_streaming_for_a_seed(openai_client, demo_model_id):
    reference = complete(openai_client, demo_model_id, max_tokens=16, seed=11, temperature=1.0)
    text, chunks = stream_text(openai_client, demo_model_id, max_tokens=16, seed=11, temperature=1.0,
                               stream_options={"include_usage": True})
    assert text == reference.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0].choices[0].finish_reason == reference.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == reference.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == reference.usage.prompt_tokens
    assert len({chunk.id for chunk in chunks}) == 1


def test_stream_without_include_usage_sends_no_usage_chunk(openai_client, demo_model_id):
    _, chunks = stream_text(openai_client, demo_model_id, max_tokens=4)
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)


def test_max_tokens_gives_finish_reason_length(openai_client, demo_model_id):
    response = complete(openai_client, demo_model_id, max_tokens=3, temperature=0,
                        logit_bias={"1": -100, "106": -100})  # <eos>, <end_of_turn>: no early stop
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3
    new_api = complete(openai_client, demo_model_id, max_completion_tokens=2, temperature=0,
                       logit_bias={"1": -100, "106": -100})
    assert new_api.usage.completion_tokens == 2


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_ends_output_before_it(openai_client, demo_model_id, stream):
    greedy = dict(max_tokens=24, temperature=0, logit_bias={"1": -100, "106": -100})
    full = complete(openai_client, demo_model_id, **greedy).choices[0].message.content
    words = full.split()
    assert len(words) >= 4, full
    stop = words[3]
    expected = full[:full.index(stop)]
    if stream:
        text, chunks = stream_text(openai_client, demo_model_id, stop=[stop, "never-appears"], **greedy)
        reason = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason][0]
    else:
        response = complete(openai_client, demo_model_id, stop=stop, **greedy)
        text, reason = response.choices[0].message.content, response.choices[0].finish_reason
    assert text == expected
    assert stop not in text
    assert reason == "stop"


def test_seed_reproduces_output_across_interleaved_requests(openai_client, demo_model_id):
    seeded = dict(max_tokens=20, seed=1234, temperature=1.0)
    first = complete(openai_client, demo_model_id, **seeded).choices[0].message.content
    # other work in between: an unseeded request, and one sharing the prompt prefix
    complete(openai_client, demo_model_id, max_tokens=8, temperature=1.2)
    complete(openai_client, demo_model_id, max_tokens=8,
             messages=PROMPT + [{"role": "assistant", "content": "Once"}, {"role": "user", "content": "More"}])
    again = complete(openai_client, demo_model_id, **seeded).choices[0].message.content
    streamed, _ = stream_text(openai_client, demo_model_id, **seeded)
    assert first == again == streamed
    others = {complete(openai_client, demo_model_id, **{**seeded, "seed": seed}).choices[0].message.content
              for seed in (1, 2, 3)}
    assert len(others | {first}) > 1, "different seeds should not all give the same text"


def test_logprobs_describe_each_generated_token(openai_client, demo_model_id):
    response = complete(openai_client, demo_model_id, max_tokens=8, temperature=0, logprobs=True,
                        top_logprobs=3, logit_bias={"1": -100, "106": -100})
    content = response.choices[0].logprobs.content
    assert len(content) == response.usage.completion_tokens == 8
    assert "".join(entry.token for entry in content) == response.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        assert [top.logprob for top in entry.top_logprobs] == sorted(
            (top.logprob for top in entry.top_logprobs), reverse=True)
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the most likely token
        assert bytes(entry.bytes).decode() == entry.token


def test_logprobs_stream_with_the_text(openai_client, demo_model_id):
    _, chunks = stream_text(openai_client, demo_model_id, max_tokens=6, temperature=0, logprobs=True,
                            logit_bias={"1": -100, "106": -100})
    entries = [entry for chunk in chunks if chunk.choices and chunk.choices[0].logprobs
               for entry in chunk.choices[0].logprobs.content]
    assert len(entries) == 6
    assert all(entry.top_logprobs == [] for entry in entries)


def test_penalties_and_sampling_fields_are_accepted_and_change_output(openai_client, demo_model_id):
    base = dict(max_tokens=24, temperature=0, logit_bias={"1": -100, "106": -100})
    plain = complete(openai_client, demo_model_id, **base).choices[0].message.content
    penalised = complete(openai_client, demo_model_id, frequency_penalty=2.0, presence_penalty=2.0,
                         **base).choices[0].message.content
    repeated = complete(openai_client, demo_model_id, extra_body={"repetition_penalty": 2.0, "min_p": 0.05,
                                                                  "top_k": 40}, **base)
    assert penalised != plain
    assert repeated.choices[0].message.content


def test_concurrent_seeded_requests_match_what_each_gives_alone(openai_client, demo_model_id):
    seeds = [21, 22, 23, 24]
    sequential = {seed: complete(openai_client, demo_model_id, max_tokens=10, seed=seed,
                                 temperature=1.0).choices[0].message.content for seed in seeds}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {seed: pool.submit(stream_text, openai_client, demo_model_id, max_tokens=10, seed=seed,
                                     temperature=1.0) for seed in seeds}
        concurrent_results = {seed: future.result()[0] for seed, future in futures.items()}
    assert concurrent_results == sequential
