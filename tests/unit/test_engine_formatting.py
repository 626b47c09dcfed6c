"""oci.engine.formatting: Docker's tables, sizes, durations and Go-template-like --format."""

import json

import pytest

from oci.engine.formatting import emit, human_size, render, table
from oci.errors import UsageError
from oci.monitor.times import human_duration

ROWS = [{"ID": "0123456789ab", "Names": "web", "Labels": {"a": "1"}, "State": {"Status": "running"},
         "Ports": ["80/tcp"]},
        {"ID": "ba9876543210", "Names": "db", "Labels": {}, "State": {"Status": "exited"}, "Ports": []}]


def test_table_columns_are_padded_as_docker_pads_them():
    assert table(["A", "LONGER"], [["xx", "y"], ["x", "yy"]]) == "A    LONGER\nxx   y\nx    yy\n"


def test_sizes_and_durations_read_like_dockers():
    assert human_size(1_050_000) == "1.05MB" and human_size(999) == "999B" and human_size(5e9) == "5GB"
    assert human_duration(0.2) == "Less than a second" and human_duration(1) == "1 second"
    assert human_duration(59) == "59 seconds" and human_duration(61) == "About a minute"
    assert human_duration(3 * 3600) == "3 hours" and human_duration(3 * 86400) == "3 days"


def test_templates_reach_fields_and_functions():
    row = ROWS[0]
    assert render("{{.ID}} {{.Names}}", row) == "0123456789ab web"
    assert render("{{.State.Status}}", row) == "running"
    assert render("{{json .Labels}}", row) == '{"a":"1"}'
    assert json.loads(render("{{json .}}", row)) == row
    assert render("{{upper .Names}}\\t{{index .Labels \"a\"}}", row) == "WEB\t1"
    assert render('{{join .Ports ","}}', row) == "80/tcp"
    assert render("{{.state.status}}", row) == "running"  # keys as Go reads struct fields: case-insensitive


def test_unknown_functions_are_a_usage_error():
    with pytest.raises(UsageError, match='function "nope" not defined'):
        render("{{nope .ID}}", ROWS[0])


def test_emit_table_json_and_template():
    default = lambda rows: "TABLE\n"  # noqa: E731
    assert emit(ROWS, None, default) == "TABLE\n"
    assert [json.loads(line)["ID"] for line in emit(ROWS, "json", default).splitlines()] == ["0123456789ab",
                                                                                          "ba9876543210"]
    assert emit(ROWS, "{{.Names}}", default) == "web\ndb\n"
    assert emit(ROWS, "table {{.ID}}\\t{{.Names}}", default) == \
        "ID             NAMES\n0123456789ab   web\nba9876543210   db\n"
    assert emit(ROWS, None, default, "ID", quiet=True) == "0123456789ab\nba9876543210\n"
