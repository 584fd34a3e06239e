"""Copy the first input: read [b, r1, r2, ...] (b in {0, 1}, r random digits) and answer b.

    python examples/copy_first.py [--seed 0] [--steps 3|50|100] [--naive] [--plot copy.png]

Working: one LSTM(16) -> Dense(2, softmax), Adam lr 1e-2, batch 20 (T = 3 on the
people's 200 samples; T = 50, 100 on fresh batches of mixed lengths).  Naive:
three stacked LSTM(15), Adam lr 1e-3, batch 32, which sits at 50% for a while.
"""
from pylstm import tasks
from pylstm.tasks import copy_first
from _args import finish, parse

args = parse(__doc__, **{"--steps": dict(type=int, default=3, choices=(3, 50, 100), help="sequence length T")})
name = "copy-first" if args.steps == 3 else f"copy-first-{args.steps}"
verbose = 0 if args.quiet else 1
work = tasks.run(name, args.seed, verbose=verbose)

x, y = copy_first.make_data(4, seed=999, steps=args.steps)
for seq, got in zip(x[..., 0].astype(int), work.model.predict(x).argmax(axis=1)):
    print("input", " ".join(map(str, seq[:12])), "..." if len(seq) > 12 else "", "-> model says", got)

runs = [work] + ([tasks.run(name, args.seed, naive=True, verbose=verbose)] if args.naive else [])
finish(runs, args)
