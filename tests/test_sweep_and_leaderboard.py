"""The studies beyond the paper: the sweep's gains and hypotheses, the leaderboard's paired comparisons.

Records are made by hand with known top-1 values, so every number below is computed by hand; the
no-learning references are given as the studies take them (``{ncm.data_key: top-1}``)."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kesl_utils import leaderboard, names, ncm, sweep
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


def references(configs, top1=30.0):
    return {ncm.data_key(c): top1 for c in configs}


SWEEP_REFERENCES = references(sweep.all_configs("smoke", seeds=SEEDS))


def test_sweep_gains_are_paired_by_seed():
    records = sweep_records(lambda a, n, noise, seed: 2.0 * a + 0.5 * seed)
    table = sweep.gains(records, "smoke", seeds=SEEDS, references=SWEEP_REFERENCES)
    row = table[(table.alignment == 1.0) & (table.n_per_class == 2) & (table.label_noise == 0.0)].iloc[0]
    diffs = np.array([2.0, 2.5, 3.0])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
    assert row.gain_top1 == pytest.approx(2.5) and row.n_seeds == 3
    assert (row.gain_top1_low, row.gain_top1_high) == pytest.approx((2.5 - half, 2.5 + half))
    assert row.ce_top1 == pytest.approx(51.0) and row.kesl_top1 == pytest.approx(53.5)
    assert row.gain_severity == pytest.approx(0.0) and row.reference == 30.0
    assert (row.top1_reading, row.severity_reading) == ("better", "no_difference")
    text = sweep.verdict_paragraph(table)
    assert "**Significantly better at 5 %** in 3 of 5: " in text
    assert "**No difference detected at this budget** in 2 of 5: alignment 0, 2 images/class" in text
    # an arm below the cell's reference: the cell is not read, whatever its interval
    low = sweep.gains(records, "smoke", seeds=SEEDS, references=references(sweep.all_configs("smoke", seeds=SEEDS),
                                                                           51.5))
    assert set(low["top1_reading"]) == {"not_informative"} and set(low["severity_reading"]) == {"not_informative"}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2)
    sweep.heatmap(low, "top1", 0.0, ax=right)  # the figure flags what the table flags
    assert len([p for p in right.patches if p.get_hatch() == "///"]) == 4
    cell = f"+2.5\n[{2.5 - half:+.1f}, {2.5 + half:+.1f}]"  # alignment 1, 2 images/class: the gain and its interval
    assert cell in [t.get_text() for t in right.texts]
    # the colour scale: the largest |interval bound| of the whole table (alignment 1: 2.5 + half), both noise levels
    assert right.images[0].get_clim() == pytest.approx((-(2.5 + half), 2.5 + half))
    noisy = plt.figure().add_subplot()
    sweep.heatmap(low, "top1", max(low["label_noise"]), ax=noisy)
    assert noisy.images[0].get_clim() == right.images[0].get_clim()
    plt.close(noisy.figure)
    sweep.lines(low, "severity", 0.0, ax=left)
    colours = {label: matplotlib.colors.to_hex(h[0].get_color())
               for h, label in zip(*left.get_legend_handles_labels()) if label.startswith("alignment")}
    other = plt.figure().add_subplot()
    sweep.lines(low, "severity", max(low["label_noise"]), ax=other)  # the noisy panel: fewer alignments, same colours
    shown = {label: matplotlib.colors.to_hex(h[0].get_color())
             for h, label in zip(*other.get_legend_handles_labels()) if label.startswith("alignment")}
    assert shown and all(colours[label] == colour for label, colour in shown.items()), (shown, colours)
    assert len(set(colours.values())) == len(colours)
    plt.close(other.figure)
    assert "not informative" in left.get_legend_handles_labels()[1]
    plt.close(fig)
    assert set(sweep.gains(records, "smoke", seeds=SEEDS)["top1_reading"]) == {"reference_missing"}


def test_the_hypotheses_are_judged_from_their_intervals():
    # gain = 3·alignment − n/3 + 2·noise·10 + a seed wobble: rises with alignment, falls with data, rises with noise
    wobble = {0: 0.0, 1: 0.3, 2: -0.2}
    records = sweep_records(lambda a, n, noise, seed: 3.0 * a - n / 3.0 + 20.0 * noise + wobble[seed] * (1 + a))
    tested = sweep.hypotheses(records, "smoke", seeds=SEEDS, references=SWEEP_REFERENCES).set_index("hypothesis")
    # alignment: gain(1, n) − gain(0, n) = 3 + wobble·1, averaged over n = 2, 3
    assert tested.loc["gain grows as alignment rises", "contrast"] == pytest.approx(3.0 + np.mean([0.0, 0.3, -0.2]))
    # data: gain(a, 2) − gain(a, 3) = 1/3 for every a and seed
    assert tested.loc["gain shrinks as data grows", "contrast"] == pytest.approx(1 / 3)
    # noise: gain(1, 3, 0.2) − gain(1, 3, 0) = 4
    assert tested.loc["gain grows with label noise", "contrast"] == pytest.approx(4.0)
    assert tested.loc["gain grows as alignment rises", "held"]
    assert tested.loc["gain grows as alignment rises", "verdict"] == "significantly better at 5 %"
    flat = sweep.hypotheses(sweep_records(lambda a, n, noise, seed: wobble[seed] * (1 + a)), "smoke", seeds=SEEDS,
                            references=SWEEP_REFERENCES).set_index("hypothesis")
    assert flat.loc["gain shrinks as data grows", "reading"] == "no_difference"
    assert not flat["held"].any()
    assert set(sweep.hypotheses([], "smoke", seeds=SEEDS)["reading"]) == {"missing"}
    # a contrast spanning a cell whose arm is below its reference is not held, however clear its interval
    lowered = references(sweep.all_configs("smoke", seeds=SEEDS))
    lowered.update(references(sweep.cell_configs("smoke", 0.0, 2, 0.0, seeds=SEEDS)["CE"], 55.0))
    spoiled = sweep.hypotheses(records, "smoke", seeds=SEEDS, references=lowered).set_index("hypothesis")
    assert spoiled.loc["gain grows as alignment rises", "reading"] == "not_informative"
    assert not spoiled.loc["gain grows as alignment rises", "held"]
    assert spoiled.loc["gain grows with label noise", "held"]  # it spans no such cell


def test_leaderboard_compares_each_method_with_ce_paired_by_seed():
    groups = leaderboard.configs("smoke", seeds=SEEDS, datasets=("cub",))
    records = []
    for (dataset, key), configs in groups.items():
        if key == "ce+crm":
            continue  # the CE runs, decided by CRM: their crm_* metrics come with the CE records
        for config in configs:
            top1 = 40.0 + config.seed + {"ce": 0.0, "kesl": 1.0 + 0.1 * config.seed, "hxe@0.5": -3.0}.get(key, 0.05 * config.seed)
            records.append(record(config, top1=top1, crm_top1=top1 - 0.5 if key == "ce" else top1))
    board = leaderboard.build(records, "smoke", seeds=SEEDS, datasets=("cub",),
                              references=references(leaderboard.all_configs("smoke", seeds=SEEDS, datasets=("cub",))))
    top1 = board[board.metric == "top-1 (%)"].set_index("method")
    assert top1.loc["ce", "mean"] == pytest.approx(41.0) and top1.loc["ce", "n_seeds"] == 3
    assert top1.loc["ce", "reading"] == "" and top1.loc["ce", "reference"] == 30.0
    assert top1.loc["kesl", "vs_ce"] == pytest.approx(1.1) and top1.loc["kesl", "reading"] == "better"
    assert top1.loc["hxe@0.5", "vs_ce"] == pytest.approx(-3.0) and top1.loc["hxe@0.5", "reading"] == "worse"
    assert top1.loc["ce+crm", "mean"] == pytest.approx(40.5)  # the CE runs' crm_top1
    assert top1.loc["ce+crm", "vs_ce"] == pytest.approx(-0.5) and top1.loc["ce+crm", "reading"] == "worse"
    # ECE is lower-is-better: the same +0 differences read as no difference, not as a loss
    assert (board[(board.metric == "ECE") & (board.method == "kesl")]["reading"] == "no_difference").all()
    lines = leaderboard.verdicts(board)
    assert "**cub** (3 paired seeds), against CE: significantly better at 5 %: KESL (paper setting) on" in lines
    cell = leaderboard.format_board(board, "cub").set_index("method").loc["KESL (paper setting)", "top-1 (%)"]
    assert cell.startswith("42.10 [") and cell.endswith("; Δ +1.10: significantly better at 5 %")
    unread = leaderboard.build(records, "smoke", seeds=SEEDS, datasets=("cub",))
    assert set(unread.loc[unread.method != "ce", "reading"]) == {"reference_missing"}
    # the trade-off figure: HXE at α 0.5 (38 %) below a 40 % reference is grey, hollow and labelled so; CE (41 %) is not
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    raised = leaderboard.build(records, "smoke", seeds=SEEDS, datasets=("cub",),
                               references=references(leaderboard.all_configs("smoke", seeds=SEEDS,
                                                                             datasets=("cub",)), 40.0))
    ax = leaderboard.tradeoff(raised, "cub")
    handles, labels = ax.get_legend_handles_labels()
    by_label = dict(zip(labels, handles))
    hxe = next(label for label in labels if label.startswith("hierarchical CE (α 0.5)"))
    assert hxe.endswith(leaderboard.BELOW_REFERENCE)
    assert matplotlib.colors.to_hex(by_label[hxe][0].get_color()) == leaderboard.NOT_INFORMATIVE_GREY
    assert by_label[hxe][0].get_markerfacecolor() == "white"
    assert "CE" in labels and "no-learning reference (error)" in labels
    assert [label for label in labels if label.endswith(leaderboard.BELOW_REFERENCE)] == [hxe]
    assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [60.0]
    # colours follow METHODS whichever method is greyed: KESL's is the same with HXE α 0.5 grey (40 %) or not (30 %)
    plain = leaderboard.tradeoff(board, "cub", ax=plt.figure().add_subplot())

    def colours(axes):
        return {label: matplotlib.colors.to_hex(h[0].get_color())
                for h, label in zip(*axes.get_legend_handles_labels()) if label.startswith(("KESL", "CE"))}
    kesl = leaderboard.method("kesl").label
    expected = matplotlib.colors.to_hex(leaderboard.METHOD_COLOURS[[m.key for m in leaderboard.METHODS].index("kesl")])
    assert expected != matplotlib.colors.to_hex("C7")  # KESL, the eighth method, is not drawn in the cycle's grey
    assert colours(ax)[kesl] == colours(plain)[kesl] == expected
    assert colours(ax) == colours(plain)
    plt.close(plain.figure)
    plt.close(ax.figure)


def test_a_difference_that_rounds_to_zero_prints_as_a_zero_gain_not_minus_zero():
    from kesl_utils.comparison import signed
    assert signed(-0.0004, 2) == signed(0.0, 2) == "+0.00"  # as tables.format_gains prints an exact zero
    assert (signed(0.004, 2), signed(-0.006, 2), signed(-0.04), signed(float("nan"), 2)) == ("+0.00", "-0.01",
                                                                                            "+0.0", "")
    row = {"dataset": "cub", "label": "KESL (paper setting)", "n_seeds": 3, "mean": 42.0, "ci_low": 41.0,
           "ci_high": 43.0, "vs_ce_low": -0.5, "vs_ce_high": 0.4, "vs_ce_p": 0.9}
    board = pd.DataFrame([
        {**row, "method": "kesl", "metric": "top-1 (%)", "vs_ce": -0.0004, "reading": "no_difference",
         "verdict": "no difference at 5 %"},
        {**row, "method": "kesl", "metric": "ECE", "vs_ce": -0.0004, "reading": "worse", "verdict": "worse"},
        {**row, "method": "hxe@0.5", "metric": "top-1 (%)", "vs_ce": -0.006, "reading": "worse",
         "verdict": "worse"}])
    shown = leaderboard.format_board(board, "cub").set_index("method")
    assert shown.loc["KESL (paper setting)", "top-1 (%)"] == "42.00 [41.00, 43.00]; Δ +0.00: no difference at 5 %"
    assert shown.loc["KESL (paper setting)", "ECE"] == "42.000 [41.000, 43.000]; Δ +0.000: worse"
    assert shown.loc["hierarchical CE (α 0.5)", "top-1 (%)"].endswith("; Δ -0.01: worse")
    lines = leaderboard.verdicts(board)
    assert "KESL (paper setting) on ECE (+0.00, 95 % CI [-0.50, +0.40], p = 0.9)" in lines
    assert "-0.00" not in lines


def test_the_glance_grid_shows_each_methods_reading_against_ce_per_dataset_and_metric():
    row = {"label": "", "n_seeds": 3, "mean": 1.0, "ci_low": 0.0, "ci_high": 2.0, "vs_ce": 0.0, "vs_ce_low": -1.0,
           "vs_ce_high": 1.0, "vs_ce_p": 0.5, "verdict": ""}
    readings = {("cub", "kesl", "top-1 (%)"): "better", ("cub", "kesl", "ECE"): "no_difference",
                ("cub", "hxe@0.5", "top-1 (%)"): "not_informative", ("cub", "hxe@0.5", "ECE"): "worse",
                ("mini_imagenet", "kesl", "top-1 (%)"): "reference_missing", ("mini_imagenet", "kesl", "ECE"): "worse"}
    board = pd.DataFrame([{**row, "dataset": d, "method": m, "metric": metric, "reading": r}
                          for (d, m, metric), r in readings.items()]
                         + [{**row, "dataset": "cub", "method": "ce", "metric": "top-1 (%)", "reading": ""}])
    grid = leaderboard.glance(board, metrics=("top-1 (%)", "ECE")).set_index("method")
    assert list(grid.index) == ["hierarchical CE (α 0.5)", "KESL (paper setting)"]  # METHODS' order, CE left out
    assert list(grid.columns) == ["cub: top-1 (%)", "cub: ECE", "mini_imagenet: top-1 (%)", "mini_imagenet: ECE"]
    assert grid.loc["KESL (paper setting)"].tolist() == ["better", "·", "?", "worse"]
    assert grid.loc["hierarchical CE (α 0.5)"].tolist() == ["n.i.", "worse", "", ""]
    with pytest.raises(ValueError, match="unknown metric.*'accuracy'.*top-1"):
        leaderboard.glance(board, metrics=("accuracy",))
