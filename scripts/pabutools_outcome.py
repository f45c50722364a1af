#!/usr/bin/env python3
"""Prints the projects that pabutools 1.2.3 selects for a Pabulib file, one id per line,
sorted as strings, so that tests and the benchmark can compare Allmende's voting rules with
the reference implementation.

    pabutools_outcome.py FILE.pb --rule equal-shares|greedy [--in-order]

equal-shares: completion_by_rule_combination(instance, multiprofile,
    [method_of_equal_shares, greedy_utilitarian_welfare],
    [{"sat_class": U, "voter_budget_increment": 1}, {"sat_class": Cost_Sat}])
  with U = Cost_Sat for approval ballots, Additive_Cardinal_Sat for points (cumulative,
  scoring) and Additive_Borda_Sat for rankings, as `allmende tally --rule equal-shares` does.
greedy: greedy_utilitarian_welfare(instance, profile, sat_class=Cost_Sat).

--in-order prints the ids in selection order instead. The seconds the rule took go to stderr.
Needs `pip install pabutools==1.2.3`.
"""

import argparse
import sys
import time
from importlib.metadata import version

from pabutools.election import (
    Additive_Borda_Sat,
    Additive_Cardinal_Sat,
    Cost_Sat,
    parse_pabulib,
)
from pabutools.rules import (
    completion_by_rule_combination,
    greedy_utilitarian_welfare,
    method_of_equal_shares,
)

UTILITY = {
    "approval": Cost_Sat,
    "choose-1": Cost_Sat,
    "cumulative": Additive_Cardinal_Sat,
    "scoring": Additive_Cardinal_Sat,
    "ordinal": Additive_Borda_Sat,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--rule", required=True, choices=["equal-shares", "greedy"])
    parser.add_argument("--in-order", action="store_true", help="print in selection order")
    args = parser.parse_args()

    if version("pabutools") != "1.2.3":
        print(f"warning: pabutools {version('pabutools')}, the reference is 1.2.3", file=sys.stderr)
    instance, profile = parse_pabulib(args.file)
    start = time.perf_counter()
    if args.rule == "greedy":
        outcome = greedy_utilitarian_welfare(instance, profile, sat_class=Cost_Sat)
    else:
        utility = UTILITY[instance.meta["vote_type"]]
        outcome = completion_by_rule_combination(
            instance,
            profile.as_multiprofile(),
            [method_of_equal_shares, greedy_utilitarian_welfare],
            [{"sat_class": utility, "voter_budget_increment": 1}, {"sat_class": Cost_Sat}],
        )
    seconds = time.perf_counter() - start
    ids = [str(p.name) for p in outcome]
    if not args.in_order:
        ids.sort()
    for project_id in ids:
        print(project_id)
    print(f"pabutools {args.rule}: {len(ids)} projects, {seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
