"""The option vocabulary every command shares: one spelling, one meaning and one default per option.

Short flags follow llama.cpp's where the meaning is the same (-m model, -p prompt, -n tokens to predict,
-c context size, -t threads, -s seed, --temp, --top-k, --top-p); defaults come from dte_build.defaults and are
tabulated in docs/cli.md. A command adds an option with its decorator here instead of spelling its own:

    @click.command()
    @options.model()
    @options.prompt(required=True)
    @options.sampling          # -n, --temp, --top-k, --top-p, -s
    @options.json_output
    def cmd(model, prompt, n_predict, temp, top_k, top_p, seed, as_json): ...

tests/test_cli.py walks every command and fails when an option of this vocabulary is spelled or defaulted
differently anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import defaults

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

JSON_SCHEMA_VERSION = 1     # the "schema" key of every --json object (docs/schemas/*.json)


def model(*, required: bool = False, help: str = "GGUF model file.") -> Decorator:
    """-m/--model PATH → parameter `model` (a Path)."""
    return click.option("-m", "--model", "model", type=click.Path(dir_okay=False, path_type=Path),
                        required=required, default=None, help=help)


def prompt(*, required: bool = False, default: str | None = None, help: str = "Text to continue.") -> Decorator:
    """-p/--prompt TEXT → parameter `prompt`."""
    return click.option("-p", "--prompt", "prompt", required=required, default=default,
                        show_default=default is not None, help=help)


def system(fn: F) -> F:
    """--system TEXT → parameter `system` (None: the persona's `system:` line; '' for none)."""
    return click.option("--system", "system", default=None,
                        help="System prompt of chat turns (default: the persona's `system:` line; '' for none).")(fn)


def n_predict(fn: F) -> F:
    """-n/--n-predict N → parameter `n_predict`."""
    return click.option("-n", "--n-predict", "n_predict", type=click.IntRange(min=0), default=defaults.N_PREDICT,
                        show_default=True, help="Most tokens to generate (stops early at end of text).")(fn)


def temp(fn: F) -> F:
    return click.option("--temp", "temp", type=click.FloatRange(0.0, 100.0), default=defaults.TEMPERATURE,
                        show_default=True, help="Sampling temperature (0: greedy, the most likely token).")(fn)


def top_k(fn: F) -> F:
    return click.option("--top-k", "top_k", type=click.IntRange(min=0), default=defaults.TOP_K, show_default=True,
                        help="Sample among the K most likely tokens (0: all).")(fn)


def top_p(fn: F) -> F:
    return click.option("--top-p", "top_p", type=click.FloatRange(0.0, 1.0, min_open=True), default=defaults.TOP_P,
                        show_default=True, help="Nucleus sampling mass (1: off).")(fn)


def seed(fn: F) -> F:
    return click.option("-s", "--seed", "seed", type=click.IntRange(0, 2**64 - 1), default=defaults.SEED,
                        show_default=True, help="Sampler RNG seed (same seed, same text; only matters with "
                                                "--temp above 0).")(fn)


def sampling(fn: F) -> F:
    """-n, --temp, --top-k, --top-p, -s (parameters n_predict, temp, top_k, top_p, seed)."""
    return n_predict(temp(top_k(top_p(seed(fn)))))


def threads(fn: F) -> F:
    """-t/--threads N → parameter `threads` (None: every core available)."""
    return click.option("-t", "--threads", "threads", type=click.IntRange(min=1), default=None,
                        help="Worker threads (default: every core available).")(fn)


def ctx_size(fn: F) -> F:
    """-c/--ctx-size N → parameter `n_ctx`."""
    return click.option("-c", "--ctx-size", "n_ctx", type=click.IntRange(min=0), default=defaults.N_CTX,
                        show_default=True, help="Context length in tokens (0: the model's, at most 4096).")(fn)


def board(*, required: bool = False, help: str = "Board (boards/NAME.toml) or a path to a board .toml.") -> Decorator:
    """--board NAME → parameter `board_name`."""
    return click.option("--board", "board_name", required=required,
                        default=None if required else defaults.BOARD, show_default=not required, metavar="NAME",
                        help=help)


def output(*, default: Path | None = None, required: bool = False, help: str = "File to write.") -> Decorator:
    """-o/--output PATH → parameter `output`."""
    return click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
                        default=default, required=required, show_default=default is not None, help=help)


def weights_layout(fn: F) -> F:
    """--weights-layout gguf|rows4 → parameter `weights_layout` (image/weights.py LAYOUTS)."""
    from ..image.weights import DEFAULT_LAYOUT, LAYOUTS

    return click.option("--weights-layout", "weights_layout", type=click.Choice(LAYOUTS), default=DEFAULT_LAYOUT,
                        show_default=True,
                        help="How the weights partition stores the tensors: rows4 (the 32-element types' matrices "
                             "4 rows interleaved, as the kernels read them: no repacking at boot) or gguf (the "
                             "file's bytes as they are). The manifest records it; `dte inspect IMAGE "
                             "--extract-gguf OUT.gguf` gives the GGUF back either way.")(fn)


def json_output(fn: F) -> F:
    """--json → parameter `as_json`: the result as one JSON object on stdout (with a "schema" key)."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the result as JSON to stdout (schema in docs/schemas/).")(fn)


def verbose(fn: F) -> F:
    """-v/--verbose → parameter `verbose`."""
    return click.option("-v", "--verbose", "verbose", is_flag=True,
                        help="Show everything (the full status stream / console) on stderr.")(fn)


# The vocabulary as data, for tests/test_cli.py and docs/cli.md: parameter name -> (flags, default).
VOCABULARY: dict[str, tuple[tuple[str, ...], object]] = {
    "model": (("-m", "--model"), None),
    "prompt": (("-p", "--prompt"), None),
    "n_predict": (("-n", "--n-predict"), defaults.N_PREDICT),
    "temp": (("--temp",), defaults.TEMPERATURE),
    "top_k": (("--top-k",), defaults.TOP_K),
    "top_p": (("--top-p",), defaults.TOP_P),
    "seed": (("-s", "--seed"), defaults.SEED),
    "threads": (("-t", "--threads"), None),
    "n_ctx": (("-c", "--ctx-size"), defaults.N_CTX),
    "board_name": (("--board",), defaults.BOARD),
    "output": (("-o", "--output"), None),
    "as_json": (("--json",), False),
    "verbose": (("-v", "--verbose"), False),
    "system": (("--system",), None),
}
