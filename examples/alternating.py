"""Generate 0 1 0 1 ... for 30 steps after S, then S; one training sequence, batch 1.

    python examples/alternating.py [--seed 0] [--long] [--naive] [--plot alt.png]

Generation feeds each sampled symbol back in (``model.generate``); the naive
run predicts by feeding zeros after S, as people did, on the same kind of model.
"""
import numpy as np

from pylstm import tasks
from pylstm.tasks import alternating
from _args import finish, parse

args = parse(__doc__, **{"--long": dict(action="store_true", help="100 steps then S")})
name = "alternating-100" if args.long else "alternating"
verbose = 0 if args.quiet else 1
work = tasks.run(name, args.seed, verbose=verbose)

steps = (100 if args.long else 30) + 1
ids = work.model.generate(np.array([2]), steps=steps, greedy=True)  # from S (id 2), samples fed back
print("generated from S:", alternating.text(ids))

runs = [work] + ([tasks.run(name, args.seed, naive=True, verbose=verbose)] if args.naive else [])
finish(runs, args)
