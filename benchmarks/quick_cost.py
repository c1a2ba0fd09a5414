"""How long the whole quick profile trains on this machine: measured where a run has a record,
estimated from the records' own throughput where it has not.

    python benchmarks/quick_cost.py [--profile quick] [--bench-ratios 1.0,1.223,0.457]

For every run ``make reproduce`` would train (the five tables, notebook 08's leaderboard and notebook
09's sweep, pretraining runs included, each once), the time is the record's ``wall_time_s`` when the
run is finished in the profile's results folder. Otherwise it is the run's training images (classes ×
images per class × epochs) times the seconds per training image measured over the finished records of
the same backbone (evaluation and start-up included, as they are in ``wall_time_s``). A backbone with
no record is scaled from ResNet-18's by ``--bench-ratios`` (throughput of ResNet-18, MobileNetV2,
ResNet-50 relative to ResNet-18; the default is benchmarks/bench_trainer.py's ratio on an idle
machine here: 137.6, 168.3 and 62.9 images/s). Printed: per group, runs done / to do and minutes.
"""
from __future__ import annotations

import argparse
from collections import defaultdict

from kesl_utils import leaderboard, paths, sweep, table_specs
from kesl_utils.config import Config
from kesl_utils.hierarchy_files import load_hierarchy
from kesl_utils.records import load_records


def train_images(config) -> int:
    return load_hierarchy(config.dataset).num_classes * config.n_per_class * config.epochs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--bench-ratios", default="1.0,1.223,0.457",
                        help="throughput of resnet18,mobilenet_v2,resnet50 relative to resnet18")
    args = parser.parse_args(argv)
    ratios = dict(zip(("resnet18", "mobilenet_v2", "resnet50"), map(float, args.bench_ratios.split(","))))
    finished = {r.run_id: r for r in load_records(paths.default_results_dir(args.profile)) if r.finished}
    groups = {"tables": table_specs.all_table_configs(args.profile), "leaderboard (08)": leaderboard.all_configs(args.profile),
              "sweep (09)": sweep.all_configs(args.profile)}
    seen, plan = set(), []
    for group, configs in groups.items():
        for config in configs:
            for c in ([config.pretrain_run] if config.pretrain_run is not None else []) + [config]:
                if c.run_id not in seen:
                    seen.add(c.run_id)
                    plan.append((group, c))
    per_image = defaultdict(list)
    for record in finished.values():
        config = Config.from_dict(record.config)
        per_image[config.backbone].append(record.wall_time_s / train_images(config))
    if not per_image:
        parser.error(f"no finished {args.profile} record to measure throughput from")
    measured = {b: sum(v) / len(v) for b, v in per_image.items()}
    reference = measured.get("resnet18") or next(iter(measured.values())) * ratios[next(iter(measured))]
    print("seconds per training image, from the records: "
          + ", ".join(f"{b} {s * 1e3:.2f} ms ({len(per_image[b])} runs)" for b, s in measured.items()))
    totals = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for group, config in plan:
        row = totals[group]
        if config.run_id in finished:
            row[0] += 1
            row[2] += finished[config.run_id].wall_time_s
        else:
            row[1] += 1
            seconds = measured.get(config.backbone, reference / ratios[config.backbone])
            row[3] += seconds * train_images(config)
    print(f"{'group':<18} {'done':>5} {'to do':>6} {'min done':>9} {'min to do (est.)':>17}")
    for group, (done, todo, spent, left) in totals.items():
        print(f"{group:<18} {done:>5} {todo:>6} {spent / 60:>9.1f} {left / 60:>17.1f}")
    spent = sum(r[2] for r in totals.values()) / 60
    left = sum(r[3] for r in totals.values()) / 60
    print(f"{'all':<18} {sum(r[0] for r in totals.values()):>5} {sum(r[1] for r in totals.values()):>6} "
          f"{spent:>9.1f} {left:>17.1f}   (total {(spent + left) / 60:.1f} h)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
