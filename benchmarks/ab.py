#!/usr/bin/env python3
"""Time one `herd bench` command two ways in alternating pairs and print B/A.

A and B differ by environment variables (--a/--b VAR=VALUE, repeatable) or by the
binary that runs (--a-bin/--b-bin, which replace the command's first word). Each
pair runs A then B in odd pairs and B then A in even ones, so both see the same
machine; the figure to quote is the median of the pairs' own ratios, with their
range. Every rate the command prints (`label: 1234 unit/s`) is compared. Nothing
here is part of `make test`.

    benchmarks/ab.py --a HERD_NARROW_ROWS=16 --b HERD_NARROW_ROWS=8 -- \\
        .build/release/herd bench cnn --encoder impala_shallow --no-floor --rounds 1
    benchmarks/ab.py --a-bin /tmp/old/herd --b-bin .build/release/herd --pairs 8 -- \\
        herd bench lstm --no-floor --threads 1 --rounds 1
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

RATE = re.compile(r"^(?!round )(.+?): ([0-9]+(?:\.[0-9]+)?) ([A-Za-z-]+)/s\b")


def parse_setting(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not VAR=VALUE")
    return name, value


def rates(output):
    """Every `label: number unit/s` line of a bench's output, by label."""
    found = {}
    for line in output.splitlines():
        m = RATE.match(line.strip())
        if m:
            found[f"{m.group(1)} ({m.group(3)}/s)"] = float(m.group(2))
    return found


def run(command, settings, binary):
    env = dict(os.environ)
    env.update(settings)
    argv = list(command)
    if binary:
        argv[0] = binary
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ab.py: {' '.join(argv)} exited with {done.returncode}:\n{done.stderr.strip()}")
    found = rates(done.stdout + "\n" + done.stderr)
    if not found:
        sys.exit(f"ab.py: no `label: N unit/s` line in the output of {' '.join(argv)}")
    return found


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--a", type=parse_setting, action="append", default=[], metavar="VAR=VALUE",
                        help="an environment variable for side A (repeatable)")
    parser.add_argument("--b", type=parse_setting, action="append", default=[], metavar="VAR=VALUE",
                        help="an environment variable for side B (repeatable)")
    parser.add_argument("--a-bin", help="the program side A runs instead of the command's first word")
    parser.add_argument("--b-bin", help="the program side B runs instead of the command's first word")
    parser.add_argument("--pairs", type=int, default=6, help="alternating pairs (default 6)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the bench command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the bench command after --")
    if args.pairs < 1:
        parser.error(f"--pairs {args.pairs}: give 1 or more")
    a, b = (dict(args.a), args.a_bin), (dict(args.b), args.b_bin)
    if a == b:
        parser.error("A and B are the same: give --a/--b or --a-bin/--b-bin")

    ratios, values = {}, {"A": {}, "B": {}}
    for pair in range(1, args.pairs + 1):
        order = [("A", a), ("B", b)] if pair % 2 else [("B", b), ("A", a)]
        got = {side: run(command, settings, binary) for side, (settings, binary) in order}
        for label in got["A"]:
            if label in got["B"]:
                ratios.setdefault(label, []).append(got["B"][label] / got["A"][label])
                for side in "AB":
                    values[side].setdefault(label, []).append(got[side][label])
        line = "; ".join(f"{label} A {got['A'][label]:,.0f} B {got['B'].get(label, float('nan')):,.0f}"
                         for label in got["A"])
        print(f"pair {pair}/{args.pairs}: {line}", flush=True)

    def describe(settings, binary):
        parts = [f"{k}={v}" for k, v in settings.items()] + ([binary] if binary else [])
        return " ".join(parts) or "(unchanged)"

    print(f"\nA: {describe(*a)}\nB: {describe(*b)}\ncommand: {' '.join(command)}\n")
    print("| rate | A (median) | B (median) | B/A (median of the pairs) | range |")
    print("|---|---|---|---|---|")
    for label, r in ratios.items():
        print(f"| {label} | {statistics.median(values['A'][label]):,.0f} | "
              f"{statistics.median(values['B'][label]):,.0f} | {statistics.median(r):.3f} | "
              f"{min(r):.3f}-{max(r):.3f} |")


if __name__ == "__main__":
    main()
