"""The end-of-run table: one row per unlearner, mean ± std cells, wrapped into blocks."""
from erasure.results.summary import format_wide, summarize


def rows(unlearner: str, metric: str, values: list[float]) -> list[dict]:
    return [{"unlearner": unlearner, "metric": metric, "value": str(v), "status": "ok", "step": "", "seed": str(i)}
            for i, v in enumerate(values)]


def test_one_row_per_unlearner_with_mean_and_std():
    data = rows("GoldModel", "acc", [0.5, 0.7]) + rows("NegGrad", "acc", [0.1, 0.3]) + rows("NegGrad", "umia", [0.6])
    table = format_wide(summarize(data))
    lines = table.splitlines()
    assert lines[0].split() == ["unlearner", "acc", "umia"]
    assert [line.split()[0] for line in lines[2:]] == ["GoldModel", "NegGrad"]
    assert "0.6 ± 0.14" in lines[2] and "-" in lines[2].split()[-1]  # GoldModel has no umia
    assert "0.2 ± 0.14" in lines[3] and lines[3].rstrip().endswith("0.6")  # one value: no std


def test_wide_tables_wrap_into_blocks():
    data = [r for m in range(12) for r in rows("Identity", f"metric_number_{m}", [1.0, 2.0])]
    table = format_wide(summarize(data), max_width=80)
    blocks = table.split("\n\n")
    assert len(blocks) > 1
    assert all(len(line) <= 80 for line in table.splitlines())
    assert sum(b.count("metric_number_") for b in blocks) == 12
