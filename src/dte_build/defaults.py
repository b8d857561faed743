"""The one default of each generation setting, shared by the library (FirmwareOptions, Engine, the token protocol's
client) and every command's options (commands/options.py). docs/cli.md tabulates them; tests/test_cli.py checks that
no command carries a different default.

Greedy decoding by default: the same prompt gives the same text on the host, in QEMU and on the appliance, and the
boot demo reads the same for everyone (tests/test_demo_text.py checks it against a word list).
"""

from __future__ import annotations

N_PREDICT = 64          # tokens to generate (llama.cpp: -n)
TEMPERATURE = 0.0       # 0: greedy (argmax); llama.cpp: --temp
TOP_K = 40              # 0: off; llama.cpp's default
TOP_P = 0.95            # 1: off; llama.cpp's default
SEED = 0                # sampler RNG seed; only matters with a temperature above 0
N_CTX = 0               # context length; 0: the model's, capped at engine.DEFAULT_CTX_CAP
BOARD = "qemu-q35"      # the board commands use when --board is not given (dte build requires it)
