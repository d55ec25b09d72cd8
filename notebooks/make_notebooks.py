"""Write the demo notebooks: python notebooks/make_notebooks.py (from anywhere).

The notebooks are committed as written here: no outputs, kernelspec python3, and stable cell
ids (so regenerating them gives the same files). Edit the cells below, not the .ipynb files.
Each notebook runs top to bottom on the built-in model with no key; cells tagged
``raises-exception`` show an error on purpose, and cells tagged ``answer`` print a model's
answer (tests/test_notebooks.py checks both).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat

HERE = Path(__file__).resolve().parent

Cell = tuple[str, str, list[str]]  # (kind, source, tags)


def md(source: str) -> Cell:
    return ("markdown", source.strip("\n"), [])


def code(source: str, *tags: str) -> Cell:
    return ("code", source.strip("\n"), list(tags))


QUICKSTART: list[Cell] = [
    md("""
# Quickstart: `%%complete`

`jupyter_complete` sends a cell to a text-completion endpoint (Anthropic's `/v1/complete`
protocol) and streams the answer into the output as it is generated.

With no `ANTHROPIC_API_KEY` and no `ANTHROPIC_BASE_URL` set, the first completion starts the
**built-in model** inside the kernel: SmolLM2-135M-Instruct, served on loopback, no network
and no key needed (a line on stderr says so). It is a 135-million-parameter model: fluent,
fast, and often wrong. It is here to show streaming and sampling; the last section shows how
to point the same cells at Claude or at another server.
"""),
    code("%load_ext jupyter_complete"),
    md("""
Every option has a default you can change for the session with `%config` (or in
`ipython_config.py`). Short answers keep this notebook quick:
"""),
    code("%config CompleteMagics.max_tokens = 40"),
    md("""
## A first completion

The cell below the magic line is the prompt. Plain text is sent as a Human turn
(`"\\n\\nHuman: ...\\n\\nAssistant:"`). The answer streams in; the footer says which model
answered, why it stopped (`max_tokens` or `stop_sequence`) and how long it took.
"""),
    code(
        """
%%complete
Write a haiku about autumn leaves.
""",
        "answer",
    ),
    md("""
## Options

`-t` temperature (0 always picks the likeliest token), `-n` max tokens, `-k` top_k, `-p`
top_p, `-s` a stop sequence (repeatable), `--system` a system prompt, `-f markdown` to render
the answer as Markdown. `%%complete?` shows the whole manual.
"""),
    code(
        """
%%complete -t 0 -n 30 --system "You answer in one short sentence."
What is the boiling point of water at sea level?
""",
        "answer",
    ),
    md("""
Write the turns yourself to start the answer for the model (a *prefill*): text after the last
`Assistant:` is continued. Here a stop sequence ends the answer at the first newline.
"""),
    code(
        """
%%complete -t 0 -n 20 -s "\\n"
Human: List three fruits, separated by commas.
Assistant: Apple,
""",
        "answer",
    ),
    md("""
## Keeping the result: `-o`

The whole `Completion` goes into the variable you name (and always into `_completion`): the
text, the stop reason, the model and the timings.
"""),
    code(
        """
%%complete -t 0.7 -n 30 -o haiku
Write a haiku about the sea.
""",
        "answer",
    ),
    code("""
print(repr(haiku.completion))
print(haiku.stop_reason, "·", haiku.model)
_completion is haiku
"""),
    md("""
`{name}` in a cell is replaced by the value of the variable `name`, where one exists (JSON and
code braces are left alone; `{{name}}` writes a literal `{name}`):
"""),
    code('topic = "a cat asleep on a windowsill"'),
    code(
        """
%%complete -n 30
One sentence about {topic}.
""",
        "answer",
    ),
    md("The line magic `%complete` sends the rest of its line:"),
    code("%complete -t 0 -n 20 Say hello in French.", "answer"),
    md("""
## Conversations

`--chat` continues a conversation: the earlier turns go into the prompt as `Human:` and
`Assistant:` turns, and each answer is added when it ends. `--chat NAME` keeps several apart;
`%complete --reset` starts over. When the turns outgrow the model's context, the oldest are
left out of the prompt, with a note.
"""),
    code(
        """
%%complete --chat -t 0 -n 30
My name is Ada. Say hello to me.
""",
        "answer",
    ),
    code(
        """
%%complete --chat -t 0 -n 30
What is my name?
""",
        "answer",
    ),
    md("""
The conversation is a Python object: read or edit `_chat.turns`, or pass it to a panel
(`Panel("...", chat=_chat)`).
"""),
    code("""
print(len(_chat), "turns")
_chat.turns[0].human
"""),
    code("%complete --reset"),
    md("""
`-f code` also puts the answer's code (its fenced blocks, else the whole answer) into a new
cell below, not run, for you to read before running it.
"""),
    code(
        """
%%complete -f code -t 0 -n 60
Write a Python function that reverses a string. Reply with only a code block.
""",
        "answer",
    ),
    md("""
## What an error looks like

A value out of range is refused before anything is sent: one line names the option and its
range, no traceback. (This cell is tagged `raises-exception`, so *Run All* goes on past it.)
"""),
    code(
        """
%%complete -t 3
This prompt is never sent: temperature must be between 0 and 1.
""",
        "raises-exception",
    ),
    md("""
## Claude, or another server

Nothing in this notebook depends on the built-in model:

* `ANTHROPIC_API_KEY` set: the cells go to the Anthropic API (`-m` picks the model).
* `ANTHROPIC_BASE_URL` set, or `%config CompleteMagics.base_url = "http://..."`: any server
  that speaks the same protocol (a gateway, a classroom server, `jupyter-complete serve`
  running a larger GGUF model).

Next: `02-parameter-tuning.ipynb` (the panel: sliders, compare, history) and
`03-how-sampling-works.ipynb` (what temperature, top_k and top_p really do).
"""),
]


TUNING: list[Cell] = [
    md("""
# Tuning parameters with the panel

The panel puts a prompt, the sampling settings and Run/Stop in one widget, with a side-by-side
compare and a history of every run. Everything it does is also a Python method; this notebook
uses the methods, so it runs top to bottom (*Run All*). When exploring by hand, use the
sliders and buttons instead.

Like `%%complete`, it uses the built-in model when no key or base URL is set.
"""),
    code("""
from jupyter_complete import Panel

panel = Panel("Name three colours, separated by commas.")
panel.settings.max_tokens = 25
panel
"""),
    md("""
## One run

The sliders and `panel.settings` are two views of the same settings: set one and the other
follows. `run()` returns at once (the answer streams into the panel from a background thread,
so the kernel stays free); `wait()` waits for it to finish.
"""),
    code(
        """
panel.settings.temperature = 0.2
panel.run()
panel.wait(120)
print(panel.text)
""",
        "answer",
    ),
    md("""
## Compare

`compare(temperatures=[...])` runs the prompt once per temperature and shows the answers side
by side in the panel (the *Compare* button does the same with the values in its box). Every
run is also recorded in `panel.history`.
"""),
    code(
        """
panel.compare(temperatures=[0, 0.5, 1])
panel.wait(120)
for record in panel.history[-3:]:
    print(f"temperature {record['temperature']:<4} {record['text']!r}")
""",
        "answer",
    ),
    md("""
Temperature 0 is greedy: it always picks the likeliest token, so it gives the same answer
every time. At temperature 1 each run samples the model's own distribution, so answers
differ. `compare(samples=3)` runs the current settings three times:
"""),
    code(
        """
panel.settings.temperature = 1.0
panel.compare(samples=3)
panel.wait(120)
for record in panel.history[-3:]:
    print(repr(record["text"]))
""",
        "answer",
    ),
    md("""
top_k and top_p cut the unlikely tokens away before the draw, which keeps a high temperature
from wandering off. Unchecked (None) they are not sent at all, which is the API's advice
unless you need them.
"""),
    code(
        """
panel.settings.top_k = 5
panel.settings.top_p = 0.8
panel.compare(samples=3)
panel.wait(120)
for record in panel.history[-3:]:
    print(repr(record["text"]))
""",
        "answer",
    ),
    md("""
## History

`panel.history` is a list of plain dicts, one per run: the prompt, every setting, the text,
the stop reason and the timings (`panel.history_frame()` gives a pandas DataFrame when pandas
is installed). `panel.load(i)` puts run `i` back into the controls.
"""),
    code("""
for r in panel.history:
    print(f"#{r['run']:<2} {r['kind']:<7} T={r['temperature']:<4} top_k={r['top_k']!s:<4} "
          f"top_p={r['top_p']!s:<4} {r['stop_reason']!s:<13} {r['chars']:>3} chars "
          f"{r['text'][:30]!r}")
"""),
    code("""
record = panel.load(1)
print(panel.settings.temperature, panel.settings.top_k, panel.text == record["text"])
"""),
    md("""
## From a cell

`%%complete --panel` opens a panel on the cell's text instead of sending it (with the cell's
options as its settings); `-o NAME` keeps the panel in a variable.
"""),
    code("%load_ext jupyter_complete"),
    code("""
%%complete --panel -o limerick -n 30
Write a limerick about a robot who learns to paint.
"""),
    code(
        """
limerick.run()
limerick.wait(120)
print(limerick.text)
""",
        "answer",
    ),
]


SAMPLING: list[Cell] = [
    md("""
# How sampling works

A language model does not write text; it gives, for the next token, a probability for every
token in its vocabulary (49,152 for the built-in model). Sampling picks one, the token is
appended, and the model is asked again. The sampling settings reshape that distribution
before each draw, in this order:

1. **temperature**: the logits are divided by the temperature before the softmax. Below 1
   the likely tokens get likelier; 0 means always the likeliest (greedy).
2. **top_k**: only the k likeliest tokens are kept.
3. **top_p**: the survivors are renormalised, and only the smallest set of likeliest tokens
   whose probabilities add up to top_p is kept.
4. The rest is renormalised and one token is drawn.

The explorer shows this for the built-in model's real next-token distribution. The built-in
server samples every token with the same two functions (`jupyter_complete.sampling.stages`
and `sample`), so what you see is exactly what `%%complete` does.
"""),
    code("""
from jupyter_complete import Explorer

cell = "Human: Name a fruit.\\nAssistant: My favourite fruit is"
ex = Explorer(cell, seed=0)
ex
"""),
    md("""
Each bar is one candidate for the next token: pale for its probability after temperature,
dark for its final probability, grey when a cut removed it. Move the sliders and the chart
follows. The same numbers are in `ex.candidates`, and `ex.settings` moves the sliders:
"""),
    code("""
def show(ex, n=6):
    print(f"{ex.survivors:,} tokens can come next · entropy {ex.entropy:.2f} bits")
    for c in ex.candidates[:n]:
        print(f"{c.rank:>3} {c.text!r:>14}  model {c.raw:6.1%}  final {c.final:6.1%}  "
              f"{c.cut_by and 'cut by ' + c.cut_by or ''}")


show(ex)
"""),
    md("""
## Temperature

Lower temperature sharpens the distribution (lower entropy); 0 leaves one token.
"""),
    code("""
ex.settings.temperature = 0.5
show(ex)
"""),
    code("""
ex.settings.temperature = 0
show(ex)
"""),
    md("""
## top_k and top_p

top_k keeps a fixed number of tokens, however flat or peaked the distribution is. top_p keeps
as many as it takes to cover that much probability: few when the model is sure, many when it
is not.
"""),
    code("""
ex.settings.temperature = 1.0
ex.settings.top_k = 3
show(ex)
"""),
    code("""
ex.settings.top_k = None
ex.settings.top_p = 0.8
show(ex)
"""),
    md("""
## Step by step

**Sample** draws the next token by the final probabilities and appends it; **Greedy** takes
the likeliest. The chart then shows the distribution for the token after it. `ex.step(n)`
does n samples:
"""),
    code(
        """
for s in ex.step(8):
    print(f"{s.index}: {s.text!r:<14} probability {s.probability:6.1%} · rank {s.rank} · "
          f"one of {s.survivors:,} · entropy {s.entropy:.2f} bits")
print(repr(ex.text))
""",
        "answer",
    ),
    md("""
## The same settings on real completions

`%%complete` with the same cell and settings sends exactly the prompt the explorer shows
(`ex.wire_prompt`), and the server samples each token as above:
"""),
    code("%load_ext jupyter_complete"),
    code(
        """
%%complete -t 1 -p 0.8 -n 20
Human: Name a fruit.
Assistant: My favourite fruit is
""",
        "answer",
    ),
    md("""
Is the chart really what the server does? Ask the server for many one-token answers at these
settings and count them: the counts come out close to the explorer's final probabilities.
(tests/test_sampling_agreement.py does this with more samples and a chi-square test.)
"""),
    code(
        """
from collections import Counter

from jupyter_complete import Client

ex.reset()
params = ex.settings.request_params()
params["max_tokens_to_sample"] = 1
n = 150
with Client() as client:
    counts = Counter(
        client.completions.create(prompt=ex.wire_prompt, **params).completion for _ in range(n)
    )
print(f"{'token':>14}  expected  observed")
for c in ex.candidates[:6]:
    print(f"{c.text!r:>14}  {c.final * n:8.1f}  {counts[c.text]:8d}")
""",
        "answer",
    ),
]


SPREAD: list[Cell] = [
    md("""
# Seeing a setting: many samples

One answer says little about a sampling setting. Ask twice at temperature 1 and you may get
two different answers; ask twice at 0.2 and you may get the same one. To *see* what a
setting does, draw many samples and look at how they spread. This notebook does that with
the built-in model, in two steps:

1. **The first token, counted.** Many one-token answers from the server, counted, next to
   the model's exact probabilities for that token (the numbers the explorer in
   `03-how-sampling-works.ipynb` shows). As the samples arrive, the counts settle on the
   probabilities.
2. **Whole answers, many per setting.** `spread()` draws several answers at each value of
   one setting and measures how different they are. It works the same against Claude or
   any other server, where no probabilities are available and samples are all there is.
"""),
    code("""
from jupyter_complete import first_tokens, spread

fruit = "Human: Name a fruit.\\nAssistant: My favourite fruit is"
"""),
    md("""
## 1. The first token, counted

The prompt ends with the start of the answer ("My favourite fruit is"), so the first token
the model writes continues that sentence. `first_tokens` asks the server for `n` one-token
answers and redraws the chart as they arrive: the pale bar is the model's probability, the
dark bar the share of samples that came out as that token. At temperature 1 with no cuts the
server samples the model's own distribution:
"""),
    code("""
own = first_tokens(fruit, n=100, temperature=1.0)
"""),
    md("""
The *total variation distance* above the chart is half the summed differences between the
two columns: 0 would be a perfect match. It shrinks as `n` grows (roughly like
1/&radic;n), and the chi-square p-value says whether the differences are larger than chance
would make them.

**Temperature** below 1 sharpens the distribution before the draw: the likely tokens take
more of the mass, the rare ones almost vanish. The model's column changes, and the counts
follow it:
"""),
    code("""
cool = first_tokens(fruit, n=100, temperature=0.5)
"""),
    code(
        """
for label, result in (("temperature 1.0", own), ("temperature 0.5", cool)):
    rows = result.rows()[:3]
    shown = ", ".join(f"{text!r} {p:.0%} (seen {count})" for text, p, count in rows)
    print(f"{label}: {shown}")
""",
        "answer",
    ),
    md("""
**top_p** (nucleus sampling) keeps only the smallest set of likeliest tokens whose
probabilities add up to top_p, and renormalises them. Everything outside gets probability 0,
and the server never returns it: count how many different first tokens came back.
"""),
    code("""
nucleus = first_tokens(fruit, n=100, temperature=1.0, top_p=0.5)
"""),
    code(
        """
print(f"tokens that can be drawn: {len(nucleus.probabilities)} with top_p 0.5, "
      f"{len(own.probabilities):,} with no cut")
print(f"different first tokens seen: {len(nucleus.counts)} with top_p 0.5, "
      f"{len(own.counts)} with no cut")
""",
        "answer",
    ),
    md("""
## 2. Whole answers: `spread`

`spread(prompt, n=..., temperature=[...])` draws `n` answers at each value of one setting
(the others stay fixed) and shows, for each value: the distinct answers and their counts
(exactly, and after ignoring case and spacing), the *diversity* (distinct answers / n, and
distinct-1 / distinct-2: the share of distinct words and word pairs among all of them),
the answer lengths, why the answers stopped, and the time to the first token. The chart
puts diversity and length against the value. A progress bar shows while it runs; the
kernel's stop button ends a sweep early and keeps what was drawn.
"""),
    code("""
by_temperature = spread("Write one short sentence about the sea.", n=4,
                        temperature=[0.2, 0.6, 1.0], max_tokens=20)
by_temperature
"""),
    md("""
Low temperature: the answers repeat. High temperature: nearly every answer is new. The same
for top_p, at temperature 1:
"""),
    code("""
by_top_p = spread("Write one short sentence about the sea.", n=4,
                  top_p=[0.2, 0.6, 1.0], temperature=1.0, max_tokens=20)
by_top_p
"""),
    md("""
Every sample is kept: `result.frame()` gives them as a pandas DataFrame (one row per
sample, with its setting, text, stop reason and timings), and `result.stats` the figures.
"""),
    code(
        """
for st in by_top_p.stats:
    print(f"top_p {st.value:<4} {len(st.answers)} distinct of {st.drawn}: "
          f"{st.answers[0][0]!r}")
""",
        "answer",
    ),
    code("""
by_top_p.frame()[["top_p", "sample", "text", "stop_reason", "time_to_first_token"]]
"""),
    md("""
## Exercises

* Run `first_tokens` with `n=20` and with `n=400`: how close do the columns get?
* Which top_p gives the same answer every time on this prompt? Which temperature?
* `spread(..., top_k=[1, 5, 50])`: what does `top_k=1` do, and why is it like temperature 0?
* Point the notebook at Claude (`ANTHROPIC_API_KEY`) and run part 2 again: `spread` needs no
  probabilities, only samples.
"""),
]


NOTEBOOKS: dict[str, list[Cell]] = {
    "01-quickstart.ipynb": QUICKSTART,
    "02-parameter-tuning.ipynb": TUNING,
    "03-how-sampling-works.ipynb": SAMPLING,
    "04-many-samples.ipynb": SPREAD,
}


def build(name: str, cells: list[Cell]) -> Any:
    """A notebook without outputs, with the python3 kernelspec and stable cell ids."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    stem = name.split(".")[0]
    for i, (kind, source, tags) in enumerate(cells):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
        cell["id"] = f"{stem[:2]}-{i:02d}"
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main() -> int:
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        nbformat.write(build(name, cells), path)
        sys.stdout.write(f"wrote {path.relative_to(HERE.parent)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
