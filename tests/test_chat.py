"""`Chat` on its own: the prompt it builds, what it drops to fit a context, keep/reset."""

from __future__ import annotations

import pytest
from fixtures_panel import HoldingReplayServer, paced_script, wait_until

from jupyter_complete import Client
from jupyter_complete.chat import Chat, Chats, Turn, estimate_tokens
from jupyter_complete.notebook import code_of
from jupyter_complete.prompt import parse
from jupyter_complete.widgets.panel import Panel


def test_a_chat_prompt_carries_the_earlier_turns_as_human_and_assistant_turns() -> None:
    chat = Chat(turns=[("My name is Ada.", " Hello Ada!")])
    built = chat.build("What is my name?", system="Be brief.")
    assert built.prompt == (
        "Be brief.\n\nHuman: My name is Ada.\n\nAssistant: Hello Ada!"
        "\n\nHuman: What is my name?\n\nAssistant:"
    )
    conversation = parse(built.prompt)  # the API's own rules accept it
    assert conversation.turns == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada!"),
        ("user", "What is my name?"),
    ]
    assert (built.dropped, built.sent) == (0, 1)
    assert built.notice("default") is None


def test_the_oldest_turns_are_dropped_first_to_fit_the_context_and_the_notice_says_so() -> None:
    turns = [(f"question {i} " + "x" * 300, f"answer {i} " + "y" * 300) for i in range(10)]
    chat = Chat("long", turns)
    one_turn = estimate_tokens(Turn(*turns[0]).wire())
    # Room for the new message and about three turns, after max_tokens.
    built = chat.build("last question", max_tokens=100, context_tokens=100 + 3 * one_turn + 20)
    assert built.dropped == 7 and built.sent == 3
    assert "question 9" in built.prompt and "question 7" in built.prompt
    assert "question 6 " not in built.prompt
    assert built.tokens <= built.budget
    notice = built.notice("long")
    assert notice is not None and "7 oldest turns" in notice and "'long'" in notice
    assert len(chat) == 10  # dropped from the prompt, not from the conversation
    # The chat's own context_tokens wins over the endpoint's default.
    chat.context_tokens = 10**6
    assert chat.build("q", context_tokens=50).dropped == 0


def test_an_unfinished_answer_waits_until_kept_and_reset_forgets_everything() -> None:
    chat = Chat()
    chat.add("one", " first")
    chat.hold("two", " partial ans")
    assert len(chat) == 1 and chat.pending == Turn("two", " partial ans")
    assert "two" not in chat.build("three").prompt
    turn = chat.keep()
    assert turn == Turn("two", " partial ans") and len(chat) == 2 and chat.pending is None
    with pytest.raises(LookupError, match="no unfinished answer"):
        chat.keep()
    chat.hold("x", "y")
    chat.reset()
    assert len(chat) == 0 and chat.pending is None
    assert chat.build("hi").prompt == "\n\nHuman: hi\n\nAssistant:"


def test_a_chat_is_a_plain_object_to_read_edit_and_rebuild() -> None:
    chat = Chat("tutor", [{"human": "a", "assistant": "b"}, Turn("c", "d")])
    assert chat.to_list() == [{"human": "a", "assistant": "b"}, {"human": "c", "assistant": "d"}]
    del chat.turns[0]
    chat.turns[0].assistant = "edited"
    assert "Assistant: edited" in chat.build("e").prompt
    assert "'tutor': 1 turns" in repr(chat)
    assert "<td>edited</td>" in chat._repr_html_()
    assert "&lt;b&gt;" in Chat(turns=[("<b>", "x")])._repr_html_()


def test_the_code_of_an_answer_is_its_fenced_blocks_else_the_whole_answer() -> None:
    answer = "Here it is:\n```python\nprint(1)\n```\nand a second:\n~~~\nx = 2\n~~~\nDone."
    assert code_of(answer) == "print(1)\n\nx = 2"
    assert code_of("  x = 1\n") == "x = 1"
    # An answer cut off inside its block keeps what it had.
    assert code_of("Sure:\n```py\ndef f():\n    return 1\n") == "def f():\n    return 1"
    # A longer fence is closed only by one at least as long.
    assert code_of("````\n```\ninner\n```\n````") == "```\ninner\n```"


def test_a_panel_given_a_chat_continues_it_and_keeps_a_stopped_answer_aside(
    holding_replay: HoldingReplayServer,
) -> None:
    server = holding_replay
    chat = Chat("panel", [("My name is Ada.", " Hello Ada!")])
    server.enqueue(
        paced_script([" You", " are Ada."]), paced_script([" Still", " going"], hold=True)
    )
    panel = Panel(
        "What is my name?",
        chat=chat,
        client=Client(base_url=server.url, api_key="k", max_retries=0),
    )
    try:
        panel.run()
        assert panel.wait(30)
        sent = server.received[0].json["prompt"]
        assert sent == (
            "\n\nHuman: My name is Ada.\n\nAssistant: Hello Ada!"
            "\n\nHuman: What is my name?\n\nAssistant:"
        )
        assert [t.assistant for t in chat] == [" Hello Ada!", " You are Ada."]
        assert panel.to_state()["output"]["label"].endswith("chat 'panel': 1 earlier turn")
        panel.prompt_box.value = "And now?"
        panel.run()
        assert wait_until(lambda: "Still going" in panel.text, 30)
        panel.stop()
        assert panel.wait(30)
        assert len(chat) == 2 and chat.pending == Turn("And now?", " Still going")
        panel.prompt_box.value = "Human: typed\nAssistant:"
        panel.run()
        assert "write only the next message" in panel.error.value
    finally:
        panel.close()
        assert panel.wait(5)


def test_a_finished_answer_settles_as_a_turn_and_says_nothing() -> None:
    chat = Chat("work")
    assert chat.settle(" Hi ", " Hello", finished=True) is None
    assert chat.turns == [Turn("Hi", " Hello")] and chat.pending is None


def test_an_unfinished_answer_is_held_and_the_user_is_told_how_to_keep_it() -> None:
    chat = Chat("work")
    message = chat.settle("Hi", " Hel", finished=False)
    assert chat.turns == [] and chat.pending == Turn("Hi", " Hel")
    assert message is not None and "%complete --keep work" in message


def test_an_unfinished_empty_answer_is_held_silently() -> None:
    chat = Chat("work")
    assert chat.settle("Hi", "", finished=False) is None and chat.pending == Turn("Hi", "")


def test_chats_by_name_share_one_object_and_bind_the_last_used_to_underscore_chat() -> None:
    chats, namespace = Chats(), dict[str, object]()
    work = chats.use("work", namespace)
    assert chats.use("work", namespace) is work and namespace["_chat"] is work
    chats.use("other", namespace)
    assert namespace["_chat"] is chats["other"] and set(chats) == {"work", "other"}


def test_chats_reset_empties_the_conversation_in_place() -> None:
    chats = Chats()
    work = chats.use("work", {})
    work.add("Hi", " Hello")
    assert chats.reset("work") == "conversation 'work' cleared" and len(work) == 0
    assert chats.reset("never-used") == "conversation 'never-used' cleared"


def test_chats_keep_adds_the_unfinished_answer_or_says_what_is_missing() -> None:
    chats = Chats()
    with pytest.raises(LookupError, match="there is no conversation 'work'"):
        chats.keep("work")
    work = chats.use("work", {})
    with pytest.raises(LookupError, match="no unfinished answer"):
        chats.keep("work")
    work.settle("Hi", " Hel", finished=False)
    assert chats.keep("work") == "conversation 'work': the unfinished answer is now turn 1"
    assert work.turns == [Turn("Hi", " Hel")]
