"""The chat template's leading tokens: evaluated once, saved, and loaded by later models."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from jupyter_complete.local.prefix_cache import (
    EVALUATED,
    LOADED,
    MAX_BYTES,
    SAVED,
    cache_folder,
    prime_prefix,
    state_name,
)
from jupyter_complete.prompt import parse

pytestmark = pytest.mark.local

PROMPT = "\n\nHuman: Say hello in five words.\n\nAssistant:"


@pytest.fixture()
def fresh(local_model):
    """Makes fresh models of the default weights at 1 thread (deterministic), closes them."""
    from jupyter_complete.local import LocalModel

    made = []

    def make():
        model = LocalModel(local_model.path, n_ctx=512, n_threads=1)
        made.append(model)
        return model

    yield make
    for model in made:
        model.close()


def prompt_of(model):
    tokens, public = model.render_public(parse(PROMPT))
    assert 0 < public < len(tokens)
    return tokens, public


def next_logits(model, tokens):
    return model.prime(tokens).copy()


def test_a_saved_prefix_is_loaded_by_a_later_model_and_gives_the_same_logits(fresh, tmp_path):
    first = fresh()
    tokens, public = prompt_of(first)
    assert prime_prefix(first, tokens[:public], tmp_path) == SAVED
    assert first.context_used == public
    expected = next_logits(first, tokens)

    later = fresh()
    assert prime_prefix(later, tokens[:public], tmp_path) == LOADED
    assert later.context_used == public
    assert np.array_equal(next_logits(later, tokens), expected)  # bit for bit
    # Only the caller's part was evaluated on top of the loaded prefix.
    assert later.context_used == len(tokens)


def test_the_state_file_is_private_and_named_by_all_it_depends_on(fresh, tmp_path):
    model = fresh()
    tokens, public = prompt_of(model)
    folder = tmp_path / "cache" / "prefix"
    assert prime_prefix(model, tokens[:public], folder) == SAVED
    (saved,) = folder.iterdir()
    assert saved.name == state_name(model, tokens[:public])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert state_name(model, tokens[: public - 1]) != saved.name  # other tokens, other file


def test_a_damaged_or_foreign_state_is_ignored_and_the_tokens_evaluated(fresh, tmp_path):
    first = fresh()
    tokens, public = prompt_of(first)
    prime_prefix(first, tokens[:public], tmp_path)
    expected = next_logits(first, tokens)
    (saved,) = tmp_path.iterdir()
    good = saved.read_bytes()

    damaged = bytearray(good)
    damaged[-100] ^= 0xFF  # one flipped bit in the KV data: the checksum says so
    saved.write_bytes(bytes(damaged))
    model = fresh()
    assert prime_prefix(model, tokens[:public], tmp_path) == SAVED  # evaluated, saved again
    assert np.array_equal(next_logits(model, tokens), expected)
    assert saved.read_bytes() == good

    saved.write_bytes(good[: len(good) // 2])  # cut short
    assert prime_prefix(fresh(), tokens[:public], tmp_path) == SAVED

    with open(saved, "wb") as file:  # too big to be read at all
        file.truncate(MAX_BYTES + 1024)
    assert prime_prefix(fresh(), tokens[:public], tmp_path) == SAVED
    assert saved.read_bytes() == good


def test_a_state_llama_cpp_refuses_leaves_an_empty_cache_and_the_tokens_evaluated(fresh, tmp_path):
    import hashlib

    from jupyter_complete.local.prefix_cache import MAGIC

    model = fresh()
    tokens, public = prompt_of(model)
    garbage = b"\x07" * 4096  # a checksum that holds over data llama.cpp cannot read
    path = tmp_path / state_name(model, tokens[:public])
    path.write_bytes(MAGIC + hashlib.sha256(garbage).digest() + garbage)
    assert prime_prefix(model, tokens[:public], tmp_path) == SAVED
    assert model.context_used == public
    reference = fresh()
    reference.prime(tokens[:public])
    assert np.array_equal(next_logits(model, tokens), next_logits(reference, tokens))


def test_an_unwritable_folder_only_means_the_tokens_are_evaluated(fresh, tmp_path):
    model = fresh()
    tokens, public = prompt_of(model)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert prime_prefix(model, tokens[:public], blocked / "prefix") == EVALUATED
    assert model.context_used == public


def test_a_model_holding_other_tokens_is_primed_without_the_cache(fresh, tmp_path):
    model = fresh()
    tokens, public = prompt_of(model)
    model.prime(model.tokenize("Something else entirely"))
    assert prime_prefix(model, tokens[:public], tmp_path) == EVALUATED
    assert model.context_used == public
    assert not list(tmp_path.iterdir())


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTER_COMPLETE_CACHE", str(tmp_path / "jc"))
    assert cache_folder() == tmp_path / "jc" / "prefix"
    monkeypatch.delenv("JUPYTER_COMPLETE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "xdg" / "jupyter_complete" / "prefix"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_folder() == Path.home() / ".cache" / "jupyter_complete" / "prefix"
    # The XDG Base Directory Specification: a relative path there is invalid, ignore it.
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert cache_folder() == Path.home() / ".cache" / "jupyter_complete" / "prefix"
    monkeypatch.setenv("XDG_CACHE_HOME", "~/xdg")
    assert cache_folder() == Path.home() / "xdg" / "jupyter_complete" / "prefix"
    monkeypatch.setenv("JUPYTER_COMPLETE_CACHE", "~")
    assert cache_folder() == Path.home() / "prefix"


def test_a_state_others_may_write_to_is_not_read(fresh, tmp_path):
    first = fresh()
    tokens, public = prompt_of(first)
    folder = tmp_path / "prefix"
    prime_prefix(first, tokens[:public], folder)
    (saved,) = folder.iterdir()
    saved.chmod(0o666)  # anyone could have put their own state there
    assert prime_prefix(fresh(), tokens[:public], folder) == SAVED  # evaluated, not read
    saved.chmod(0o600)
    folder.chmod(0o777)  # or their own file in its place
    assert prime_prefix(fresh(), tokens[:public], folder) == SAVED
    folder.chmod(0o700)
    assert prime_prefix(fresh(), tokens[:public], folder) == LOADED


def test_without_a_home_folder_for_the_cache_the_tokens_are_only_evaluated(fresh, monkeypatch):
    import pwd

    model = fresh()
    tokens, public = prompt_of(model)
    # A container run as a uid that is not in /etc/passwd, with no $HOME: Path.home() fails.
    for name in ("HOME", "JUPYTER_COMPLETE_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)

    def unknown(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    assert prime_prefix(model, tokens[:public]) == EVALUATED
    assert model.context_used == public


def test_weights_rewritten_in_place_with_their_size_and_time_kept_get_no_old_state(
    local_model, tmp_path
):
    import os
    import shutil

    from jupyter_complete.local import LocalModel

    path = tmp_path / "model.gguf"
    shutil.copyfile(local_model.path, path)
    folder = tmp_path / "prefix"
    first = LocalModel(path, n_ctx=512, n_threads=1)
    try:
        tokens, public = prompt_of(first)
        assert prime_prefix(first, tokens[:public], folder) == SAVED
        old = next_logits(first, tokens)
    finally:
        first.close()
    # Other weights of the same size, with the old modification time (as `cp -p`,
    # `rsync -t` or `touch -r` leave them): a nudge to the quantized values of the middle
    # of the file, where the layers that fill the KV cache are.
    before = path.stat()
    size = before.st_size
    with open(path, "r+b") as file:
        file.seek(size // 2)
        chunk = bytearray(file.read(4 << 20))
        for at in range(0, len(chunk), 2):
            chunk[at] ^= 0x01
        file.seek(size // 2)
        file.write(chunk)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (size, before.st_mtime_ns)

    changed = LocalModel(path, n_ctx=512, n_threads=1)
    reference = LocalModel(path, n_ctx=512, n_threads=1)
    try:
        assert prime_prefix(changed, tokens[:public], folder) != LOADED
        reference.prime(tokens[:public])
        expected = next_logits(reference, tokens)
        assert not np.array_equal(expected, old)  # the nudge does change what comes next
        assert np.array_equal(next_logits(changed, tokens), expected)
    finally:
        changed.close()
        reference.close()


@pytest.mark.parametrize("kind", ["fifo", "symlink to a fifo", "symlink to a state"])
def test_a_state_that_is_not_a_plain_file_is_not_read_and_never_blocks(fresh, tmp_path, kind):
    import os
    import threading

    first = fresh()
    tokens, public = prompt_of(first)
    elsewhere = tmp_path / "elsewhere"
    prime_prefix(first, tokens[:public], elsewhere)  # a good state, in another folder
    folder = tmp_path / "prefix"
    folder.mkdir(mode=0o700)
    path = folder / state_name(first, tokens[:public])
    if kind == "symlink to a state":
        path.symlink_to(elsewhere / path.name)  # this user's, private: still not ours to read
    else:
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo, 0o600)  # opening it to read waits for a writer that never comes
        if kind == "fifo":
            fifo.rename(path)
        else:
            path.symlink_to(fifo)
    model = fresh()
    done: list[str] = []
    worker = threading.Thread(
        target=lambda: done.append(prime_prefix(model, tokens[:public], folder)), daemon=True
    )
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock it: a writer that closes at once
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(30)
        pytest.fail("reading the state blocked")
    assert done == [SAVED]  # evaluated, and a plain file saved in its place
    assert path.is_file() and not path.is_symlink()


def test_a_state_of_fewer_tokens_under_this_name_is_not_loaded(fresh, tmp_path):
    first = fresh()
    tokens, public = prompt_of(first)
    assert prime_prefix(first, tokens[: public - 4], tmp_path) == SAVED
    reference = fresh()  # the same evaluation path: the prefix, then the rest
    reference.prime(tokens[:public])
    expected = next_logits(reference, tokens)
    # A valid state of other tokens, copied to this prefix's name: llama.cpp reads it.
    (tmp_path / state_name(first, tokens[: public - 4])).rename(
        tmp_path / state_name(first, tokens[:public])
    )
    model = fresh()
    assert prime_prefix(model, tokens[:public], tmp_path) == SAVED  # evaluated, saved again
    assert model.context_used == public
    assert np.array_equal(next_logits(model, tokens), expected)
