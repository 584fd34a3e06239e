"""Bitwise OR of two 5-bit strings, one bit pair per step, with an LSTM.

    python examples/binary_or.py [--seed 0] [--naive] [--plot or.png]

The working model (``pylstm.tasks.binary_or.working_model``) is
LSTM(8, return_sequences=True) -> Dense(1, sigmoid), binary cross-entropy, Adam
lr 1e-2; people tried a linear output with mean squared error and RMSprop.
"""
import numpy as np

from pylstm import tasks
from _args import finish, parse

args = parse(__doc__)
verbose = 0 if args.quiet else 1
work = tasks.run("or", args.seed, verbose=verbose)  # 100000 train, 30000 test; stops at 100%

a, b = np.array([[1, 0, 0, 1, 0]]), np.array([[0, 0, 1, 1, 0]])
x = np.stack([a, b], axis=-1).astype(np.float32)  # (1, 5, 2): the bit pair at each step
print("a    ", a[0], "\nb    ", b[0], "\nmodel", (work.model.predict(x)[0, :, 0] > 0.5).astype(int))

runs = [work] + ([tasks.run("or", args.seed, naive=True, verbose=verbose)] if args.naive else [])
finish(runs, args)
