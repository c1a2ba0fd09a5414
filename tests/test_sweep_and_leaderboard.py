"""The studies beyond the paper: the sweep's gains and hypotheses, the leaderboard's paired comparisons.

Records are made by hand with known top-1 values, so every number below is computed by hand."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kesl_utils import leaderboard, names, sweep
from kesl_utils.records import RunRecord

SEEDS = (0, 1, 2)


def record(config, **metrics):
    values = {key: 1.0 for key in names.ALL_METRIC_KEYS}
    values.update(metrics)
    return RunRecord(run_id=config.run_id, config=config.to_dict(), metrics=values)


def sweep_records(gain_of):
    """CE at 50 + seed; KESL at CE + gain_of(alignment, n, noise, seed)."""
    out = []
    for alignment, n, noise in sweep.grid("smoke").cells():
        cell = sweep.cell_configs("smoke", alignment, n, noise, seeds=SEEDS)
        for ce, kesl in zip(cell["CE"], cell["KESL"]):
            base = 50.0 + ce.seed
            out += [record(ce, top1=base), record(kesl, top1=base + gain_of(alignment, n, noise, ce.seed))]
    return out


def test_sweep_gains_are_paired_by_seed():
    records = sweep_records(lambda a, n, noise, seed: 2.0 * a + 0.5 * seed)
    table = sweep.gains(records, "smoke", seeds=SEEDS)
    row = table[(table.alignment == 1.0) & (table.n_per_class == 2) & (table.label_noise == 0.0)].iloc[0]
    diffs = np.array([2.0, 2.5, 3.0])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
    assert row.gain_top1 == pytest.approx(2.5) and row.n_seeds == 3
    assert (row.gain_top1_low, row.gain_top1_high) == pytest.approx((2.5 - half, 2.5 + half))
    assert row.ce_top1 == pytest.approx(51.0) and row.kesl_top1 == pytest.approx(53.5)
    assert row.gain_severity == pytest.approx(0.0)
    text = sweep.verdict_paragraph(table)
    assert "significantly positive** (95 % interval above zero) in 3 of 5 cells" in text


def test_the_hypotheses_are_judged_from_their_intervals():
    # gain = 3·alignment − n/3 + 2·noise·10 + a seed wobble: rises with alignment, falls with data, rises with noise
    wobble = {0: 0.0, 1: 0.3, 2: -0.2}
    records = sweep_records(lambda a, n, noise, seed: 3.0 * a - n / 3.0 + 20.0 * noise + wobble[seed] * (1 + a))
    tested = sweep.hypotheses(records, "smoke", seeds=SEEDS).set_index("hypothesis")
    # alignment: gain(1, n) − gain(0, n) = 3 + wobble·1, averaged over n = 2, 3
    assert tested.loc["gain grows as alignment rises", "contrast"] == pytest.approx(3.0 + np.mean([0.0, 0.3, -0.2]))
    # data: gain(a, 2) − gain(a, 3) = 1/3 for every a and seed
    assert tested.loc["gain shrinks as data grows", "contrast"] == pytest.approx(1 / 3)
    # noise: gain(1, 3, 0.2) − gain(1, 3, 0) = 4
    assert tested.loc["gain grows with label noise", "contrast"] == pytest.approx(4.0)
    assert tested.loc["gain grows as alignment rises", "verdict"] == "held at 5 %"
    flat = sweep.hypotheses(sweep_records(lambda a, n, noise, seed: wobble[seed] * (1 + a)), "smoke", seeds=SEEDS)
    assert flat.set_index("hypothesis").loc["gain shrinks as data grows", "verdict"].startswith("not shown")
    assert sweep.hypotheses([], "smoke", seeds=SEEDS)["verdict"].str.startswith("untested").all()


def test_leaderboard_compares_each_method_with_ce_paired_by_seed():
    groups = leaderboard.configs("smoke", seeds=SEEDS, datasets=("cub",))
    records = []
    for (dataset, key), configs in groups.items():
        if key == "ce+crm":
            continue  # the CE runs, decided by CRM: their crm_* metrics come with the CE records
        for config in configs:
            top1 = 40.0 + config.seed + {"ce": 0.0, "kesl": 1.0 + 0.1 * config.seed, "hxe@0.5": -3.0}.get(key, 0.05 * config.seed)
            records.append(record(config, top1=top1, crm_top1=top1 - 0.5 if key == "ce" else top1))
    board = leaderboard.build(records, "smoke", seeds=SEEDS, datasets=("cub",))
    top1 = board[board.metric == "top-1 (%)"].set_index("method")
    assert top1.loc["ce", "mean"] == pytest.approx(41.0) and top1.loc["ce", "n_seeds"] == 3
    assert top1.loc["kesl", "vs_ce"] == pytest.approx(1.1) and top1.loc["kesl", "beats_ce"] == True  # noqa: E712
    assert top1.loc["hxe@0.5", "vs_ce"] == pytest.approx(-3.0) and top1.loc["hxe@0.5", "beats_ce"] == False  # noqa: E712
    assert top1.loc["ce+crm", "mean"] == pytest.approx(40.5)  # the CE runs' crm_top1
    assert top1.loc["ce+crm", "vs_ce"] == pytest.approx(-0.5)
    lines = leaderboard.verdicts(board)
    assert "**cub** (3 paired seeds): better than CE at 5 %: KESL (paper setting) on" in lines
