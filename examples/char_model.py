"""A character-level language model: train on a text, then sample from it.

    python examples/char_model.py [--seed 0] [--full] [--text FILE] [--minutes M] [--naive] [--plot char.png]

Quick form: a small play-like text made in code.  --full: the Python standard
library's own source, a larger model.  --text takes any file, e.g.
tinyshakespeare (download it yourself); the last 10% is held out.
"""
from pylstm import tasks
from pylstm.tasks import char_model
from _args import finish, parse

args = parse(__doc__, **{
    "--full": dict(action="store_true", help="the full form"),
    "--text": dict(metavar="FILE", help="train on this text file"),
    "--minutes": dict(type=float, help="wall-clock budget"),
})
opts = {"quick": not args.full}
if args.text:
    opts["text"] = char_model.read_text(args.text)
if args.minutes:
    opts["minutes"] = args.minutes
verbose = 0 if args.quiet else 1
work = tasks.run("char", args.seed, verbose=verbose, **opts)
print("sample at temperature 0.8:\n" + work.sample + "\n")

runs = [work] + ([tasks.run("char", args.seed, naive=True, verbose=verbose, **opts)] if args.naive else [])
finish(runs, args)
