"""``%%complete --chat``, ``--reset``, ``--keep``, ``-f code``, ``--models`` and token counts,
in a real ipykernel driven through jupyter_client, against the replay server on loopback."""

from __future__ import annotations

import json

from fixtures_kernel import KernelHandle
from fixtures_replay import (
    ReplayServer,
    completion_event,
    error_script,
    json_script,
    sse,
    sse_script,
)


def chat_cell(replay: ReplayServer, body: str, options: str = "--chat") -> str:
    return f"%%complete --base-url {replay.url} {options}\n{body}"


def answer(*texts: str, stop_reason: str = "stop_sequence", **final: object) -> object:
    events = [completion_event(t) for t in texts]
    events.append(completion_event("", stop_reason, **final))
    return sse_script(events)


def sent_prompt(replay: ReplayServer, index: int = -1) -> str:
    return str(replay.received[index].json["prompt"])


def html_outputs(run: object) -> str:
    return "\n".join(m["content"]["data"].get("text/html", "") for m in run.displays())  # type: ignore[attr-defined]


def test_chat_cells_continue_one_conversation_and_reset_clears_it(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    kernel.execute("%complete --reset")
    kreplay.enqueue(
        answer(" Hello", " Ada!"), answer(" You", " are Ada."), answer(" I do not know.")
    )
    first = kernel.execute(chat_cell(kreplay, "My name is Ada."))
    assert first.status == "ok", first.error_text
    assert sent_prompt(kreplay) == "\n\nHuman: My name is Ada.\n\nAssistant:"
    second = kernel.execute(chat_cell(kreplay, "What is my name?"))
    assert second.status == "ok", second.error_text
    assert sent_prompt(kreplay) == (
        "\n\nHuman: My name is Ada.\n\nAssistant: Hello Ada!"
        "\n\nHuman: What is my name?\n\nAssistant:"
    )
    # The conversation is a Python object in the namespace, named in the footer's record.
    assert kernel.value("[(t.human, t.assistant) for t in _chat.turns]") == [
        ["My name is Ada.", " Hello Ada!"],
        ["What is my name?", " You are Ada."],
    ]
    assert second.completion_metadata()["chat"] == "default"
    reset = kernel.execute("%complete --reset")
    assert reset.status == "ok" and "conversation 'default' cleared" in json.dumps(
        [m["content"]["data"] for m in reset.displays()]
    )
    third = kernel.execute(chat_cell(kreplay, "What is my name?"))
    assert third.status == "ok", third.error_text
    assert sent_prompt(kreplay) == "\n\nHuman: What is my name?\n\nAssistant:"


def test_reset_clears_the_conversation_object_a_panel_or_variable_already_holds(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    kernel.execute("%complete --reset held")
    kreplay.enqueue(answer(" Noted."))
    run = kernel.execute(chat_cell(kreplay, "Remember 7.", "--chat held"))
    assert run.status == "ok", run.error_text
    run = kernel.execute(chat_cell(kreplay, "Next.", "--chat held --panel -o p"))
    assert run.status == "ok", run.error_text
    kernel.execute("c = _chat")
    assert kernel.value("len(c)") == 1
    kernel.execute("%complete --reset held")
    # The panel, `c` and the next --chat cell all see one conversation, now empty.
    assert kernel.value("[len(c), len(p.chat), len(_chat), c is _chat]") == [0, 0, 0, True]
    kernel.execute("p.close()")


def test_named_conversations_are_separate_and_a_bare_chat_line_returns_the_object(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    kernel.execute("%complete --reset tutor")
    kernel.execute("%complete --reset other")
    kreplay.enqueue(answer(" One."), answer(" Two."))
    run = kernel.execute(chat_cell(kreplay, "First.", "--chat tutor -t 0"))
    assert run.status == "ok", run.error_text
    assert kreplay.received[-1].json["temperature"] == 0  # the option after --chat still applies
    run = kernel.execute(chat_cell(kreplay, "Second.", "--chat other"))
    assert "First." not in sent_prompt(kreplay)
    got = kernel.execute("c = %complete --chat tutor\nprint(c.name, len(c), c is _chat)")
    assert got.stream_text().strip() == "tutor 1 True"
    # Edits to the object are what the next cell sends.
    kreplay.enqueue(answer(" Three."))
    kernel.execute("c.turns[0].assistant = ' Edited.'")
    run = kernel.execute(chat_cell(kreplay, "Third.", "--chat tutor"))
    assert "\n\nHuman: First.\n\nAssistant: Edited.\n\nHuman: Third." in sent_prompt(kreplay)


def test_an_answer_that_breaks_off_is_added_only_when_kept(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    kernel.execute("%complete --reset")
    kreplay.enqueue(
        sse_script(
            [
                completion_event(" Half an"),
                sse(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                ),
            ]
        )
    )
    run = kernel.execute(chat_cell(kreplay, "Tell me a story."))
    assert run.status == "error"
    assert "not added" in html_outputs(run) and "--keep" in html_outputs(run)
    assert kernel.value("len(_chat)") == 0
    assert kernel.value("_chat.pending.assistant") == " Half an"
    kept = kernel.execute("%complete --keep")
    assert kept.status == "ok", kept.error_text
    kreplay.enqueue(answer(" Go on."))
    kernel.execute(chat_cell(kreplay, "Continue."))
    assert "Assistant: Half an\n\nHuman: Continue." in sent_prompt(kreplay)
    again = kernel.execute("%complete --keep")
    assert again.status == "error" and "no unfinished answer" in again.error_text


def test_turns_that_do_not_fit_the_context_are_left_out_with_a_notice(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    kernel.execute("%complete --reset small")
    kernel.execute(
        "c = %complete --chat small\n"
        "for i in range(6): c.add(f'question {i} ' + 'x' * 300, 'y' * 300)\n"
        "c.context_tokens = 400"
    )
    kreplay.enqueue(answer(" Ok."))
    run = kernel.execute(chat_cell(kreplay, "Newest.", "--chat small -n 100"))
    assert run.status == "ok", run.error_text
    prompt = sent_prompt(kreplay)
    assert "question 5" in prompt and "question 0" not in prompt
    notes = html_outputs(run)
    assert "oldest turns left out of this prompt" in notes
    # The notice is information, not an error: a display, nothing on stderr.
    assert run.stream_text("stderr") == ""
    assert kernel.value("len(c)") == 7


def test_chat_refuses_typed_turns_and_raw_with_one_line(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    run = kernel.execute(chat_cell(kreplay, "Human: hi\nAssistant: yo"))
    assert run.status == "error" and "write only your next message" in run.error_text
    run = kernel.execute(chat_cell(kreplay, "hi", "--chat --raw"))
    assert run.status == "error" and "drop --raw" in run.error_text
    assert not kreplay.received


def test_format_code_puts_the_fenced_code_into_a_new_cell_below_not_run(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    kreplay.enqueue(
        answer("Here:\n```python\n", "def add(a, b):\n    return a + b\n", "```\nUse it well.")
    )
    run = kernel.execute(chat_cell(kreplay, "Write add().", "-f code"))
    assert run.status == "ok", run.error_text
    assert run.reply is not None
    payloads = run.reply["content"]["payload"]
    assert payloads == [
        {"source": "set_next_input", "text": "def add(a, b):\n    return a + b", "replace": False}
    ]
    assert "Use it well." in run.stream_text()  # the whole answer is still shown


def test_models_lists_the_endpoints_models_with_a_get(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    kreplay.enqueue(
        json_script(
            200,
            {
                "data": [
                    {
                        "type": "model",
                        "id": "replay-1",
                        "display_name": "Replay One",
                        "created_at": "2024-01-01T00:00:00Z",
                    },
                    {
                        "type": "model",
                        "id": "replay-<2>",
                        "display_name": "Two",
                        "created_at": "2024-02-01T00:00:00Z",
                    },
                ],
                "has_more": False,
                "first_id": "replay-1",
                "last_id": "replay-<2>",
            },
        )
    )
    run = kernel.execute(f"%complete --models --base-url {kreplay.url}")
    assert run.status == "ok", run.error_text
    request = kreplay.received[-1]
    assert request.method == "GET" and request.path.startswith("/v1/models")
    assert request.headers.get("x-api-key")  # the key went to the host the user named
    data = run.displays()[-1]["content"]["data"]
    assert "replay-1" in data["text/plain"] and "Replay One" in data["text/plain"]
    assert "replay-&lt;2&gt;" in data["text/html"]  # escaped
    kreplay.enqueue(error_script(404, "not_found_error", "Not found"))
    missing = kernel.execute(f"%complete --models --base-url {kreplay.url}")
    assert missing.status == "error" and "404" in missing.error_text
    assert len(missing.error_text.strip().splitlines()) <= 2


def test_the_footer_shows_token_counts_when_the_server_reports_them(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    kreplay.enqueue(answer(" Counted.", usage={"input_tokens": 12, "output_tokens": 3}))
    run = kernel.execute(chat_cell(kreplay, "Count.", ""))
    assert run.status == "ok", run.error_text
    footer = run.displays()[-1]["content"]["data"]["text/plain"]
    assert "12 in / 3 out tokens" in footer
    assert run.completion_metadata()["usage"] == {"input_tokens": 12, "output_tokens": 3}
    kreplay.enqueue(answer(" Not counted."))
    run = kernel.execute(chat_cell(kreplay, "Count.", ""))
    assert "tokens" not in run.displays()[-1]["content"]["data"]["text/plain"]


def test_streamed_text_is_marked_to_wrap_at_word_boundaries(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    kreplay.enqueue(answer(" Some words."))
    run = kernel.execute(chat_cell(kreplay, "Say.", ""))
    first = run.displays()[0]["content"]["data"]
    assert "jc-wrap-marker" in first["text/html"] and "word-break:normal" in first["text/html"]
    assert "text/plain" not in first  # nothing in a terminal
    kreplay.enqueue(answer(" **bold**"))
    run = kernel.execute(chat_cell(kreplay, "Say.", "-f markdown"))
    assert not any(
        "jc-wrap-marker" in m["content"]["data"].get("text/html", "") for m in run.displays()
    )


def test_chat_with_panel_opens_a_panel_that_continues_the_conversation(
    kernel: KernelHandle, kreplay: ReplayServer
) -> None:
    run = kernel.execute(chat_cell(kreplay, "Hello", "--chat tutor --panel -o p"))
    assert run.status == "ok", run.error_text
    got = kernel.execute("print(p.chat is _chat, p.chat.name)\np.close()")
    assert got.stream_text().strip() == "True tutor"
    assert not kreplay.received  # opening the panel sends nothing
