from datetime import date, timedelta

from portal.charts import line_chart


def _series(values):
    start = date(2026, 1, 1)
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def test_points_span_the_plot_and_scale_to_the_range():
    chart = line_chart(_series([0, 500, 1000]), width=200, height=120)
    xs = [float(p.split(",")[0]) for p in chart.points.split()]
    ys = [float(p.split(",")[1]) for p in chart.points.split()]
    assert xs[0] == 70 and xs[-1] == 195  # from the axis to the right edge
    assert ys[0] > ys[1] > ys[2]  # higher balance, higher on screen
    assert chart.zero_y == ys[0]


def test_negative_balances_put_zero_inside_the_plot():
    chart = line_chart(_series([-300, 300]), width=200, height=120)
    ys = [float(p.split(",")[1]) for p in chart.points.split()]
    assert ys[1] < chart.zero_y < ys[0]


def test_last_date_label_is_end_anchored_so_it_is_not_clipped():
    chart = line_chart(_series(list(range(90))))
    assert chart.x_labels[-1][1] == "31 Mar"
    assert chart.x_labels[-1][2] == "end"
    assert all(anchor == "middle" for _, _, anchor in chart.x_labels[:-1])


def _spans(chart, width=40):
    """Where each date label prints (about 40 px for "02 Dec" at 11 px)."""
    return [
        (x - width, x) if anchor == "end" else (x - width / 2, x + width / 2)
        for x, _, anchor in chart.x_labels
    ]


def test_date_labels_never_print_over_each_other():
    for days in (2, 5, 7, 8, 13, 29, 30, 31, 60, 90, 365):
        chart = line_chart(_series(list(range(days))))
        spans = _spans(chart)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), (days, chart.x_labels)
        assert chart.x_labels[-1][2] == "end"
