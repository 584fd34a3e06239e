"""Parity of a bit sequence (is the number of ones odd?), at T = 7, 20 or 50.

    python examples/parity.py [--seed 0] [--steps 50] [--naive] [--plot parity.png]

Working: LSTM(16, return_sequences=True) -> Dense(2, softmax) trained on the
running parity at every step, scored on the last step.  Naive (people's): two
LSTM(40), last step only, N(0, 0.01) weights, Adagrad lr 0.1, clipping at 100.
"""
import numpy as np

from pylstm import tasks
from pylstm.tasks import parity
from _args import finish, parse

args = parse(__doc__, **{"--steps": dict(type=int, default=7, choices=(7, 20, 50), help="sequence length T")})
name = "parity" if args.steps == 7 else f"parity-{args.steps}"
verbose = 0 if args.quiet else 1
work = tasks.run(name, args.seed, verbose=verbose)

x, y, _ = parity.make_data(3, seed=12345, steps=args.steps)
pred = work.model.predict(x)[:, -1].argmax(axis=1)  # the last step's answer
for bits, want, got in zip(x[..., 0].astype(int), y, pred):
    print("".join(map(str, bits)), "parity", want, "model", got)

runs = [work] + ([tasks.run(name, args.seed, naive=True, verbose=verbose)] if args.naive else [])
finish(runs, args)
