"""``python -m hf_reinforce``: the command line (also ``accelerate launch -m hf_reinforce`` / ``torchrun -m hf_reinforce``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
