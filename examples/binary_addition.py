"""Binary addition, least significant bit first: trained at 8 bits, scored at 8 and 16.

    python examples/binary_addition.py [--seed 0] [--naive] [--plot add.png]

LSTM(16, return_sequences=True) -> Dense(1, sigmoid) reads the two numbers'
bits one pair per step (plus a final zero step for the carry).
"""
import numpy as np

from pylstm import tasks
from _args import finish, parse

args = parse(__doc__)
verbose = 0 if args.quiet else 1
work = tasks.run("addition", args.seed, verbose=verbose)


def add(model, a: int, b: int, bits: int) -> int:
    steps = np.arange(bits + 1)
    x = np.stack([(a >> steps) & 1, (b >> steps) & 1], axis=-1)[None].astype(np.float32)
    out = (model.predict(x)[0, :, 0] > 0.5).astype(int)
    return int(out @ (2 ** steps))


for a, b, bits in [(200, 99, 8), (40000, 25535, 16)]:  # the second is longer than anything it trained on
    print(f"{a} + {b} = {add(work.model, a, b, bits)} (model, {bits} bits), {a + b} (exact)")

runs = [work] + ([tasks.run("addition", args.seed, naive=True, verbose=verbose)] if args.naive else [])
finish(runs, args)
