"""Query lists in, answer tables out (plain Python, no database)."""

import io

import pytest
from astropy.io.votable import parse_single_table
from astropy.table import Table

from inference.tables import read_queries, results_table, table_csv, table_votable


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "299489677444933632\n0266-51630-0168\n",
            [{"identifier": "299489677444933632"}, {"identifier": "0266-51630-0168"}],
        ),
        ("# my targets\nspecobjid,note\n299489677444933632,nice\n\n", [{"identifier": "299489677444933632"}]),
        ("plate,mjd,fiberid\n266,51630,168\n", [{"identifier": "266-51630-168"}]),
        ("name,RA,Dec\nA,146.71421,-1.04128\n", [{"ra": 146.71421, "dec": -1.04128}]),
    ],
)
def test_query_lists_in_the_shapes_people_keep_them(text, expected):
    assert read_queries(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the list is empty"),
        ("ra,dec\n10.0,north\n", "line 2: expected numbers in the ra and dec columns"),
        ("specobjid,note\n,empty\n", "line 2: no identifier"),
    ],
)
def test_bad_query_lists_say_which_line(text, message):
    with pytest.raises(ValueError, match=message):
        read_queries(text)


def test_an_answer_table_round_trips_through_csv_and_votable():
    rows = [
        {
            "position": 0,
            "query": "0266-51630-0168",
            "specobjid": "299489677444933632",
            "plate_mjd_fiber": "0266-51630-0168",
            "ra": 146.71421,
            "dec": -1.041304,
            "z": 0.02122,
            "mock": False,
            "label": "lens",
            "share": 0.67,
            "is_target": True,
            "error": None,
            "trust": {
                "valid_fraction": 0.44,
                "z_in_range": True,
                "distance_percentile": 100.0,
                "reconstruction_percentile": 42.5,
                "in_distribution": False,
                "reasons": ["only 44% of its pixels are valid", "its nearest neighbour is far"],
            },
            "neighbours": [
                {"specobjid": "1", "label": "lens", "distance": 0.1, "weight": 0.34},
                {"specobjid": "2", "label": "other", "distance": 0.2, "weight": 0.33},
            ],
        },
        {"position": 1, "query": "nonsense", "neighbours": [], "error": "no ingested spectrum has ..."},
    ]
    meta = {"task": "lens", "kb_version": 3, "checkpoint": "run 2, step 250", "date": "2026-12-01T16:00:00Z"}
    table = results_table(rows, k=2, meta=meta)
    assert table.colnames[:11] == [
        *("position", "query", "specobjid", "plate_mjd_fiber", "ra", "dec", "z", "mock", "label", "share"),
        "is_target",
    ]
    csv_text = table_csv(table)
    lines = [line for line in csv_text.splitlines() if not line.startswith("#")]  # below the ECSV header
    assert lines[1].startswith(
        "0,0266-51630-0168,299489677444933632,0266-51630-0168,146.71421,-1.041304,0.02122,False,lens,0.67,True,"
        "1,lens,0.1,0.34,2,other"
    )
    assert lines[1].endswith(
        ",False,0.44,True,100.0,42.5,only 44% of its pixels are valid; its nearest neighbour is far,"
    )
    assert lines[2] == "1,nonsense" + "," * 24 + "no ingested spectrum has ..."  # all masked but the error
    again = Table.read(csv_text, format="ascii.ecsv")  # astropy (and TOPCAT) read the units and what it is
    assert again.meta == meta and again["ra"].unit == "deg" and again["ra"][0] == 146.71421
    votable = parse_single_table(io.BytesIO(table_votable(table)))
    assert {p.name: p.value for p in votable.params} == {key: str(value) for key, value in meta.items()}
    fields = {f.name: f for f in votable.fields}
    assert (fields["ra"].ucd, fields["ra"].unit) == ("pos.eq.ra;meta.main", "deg")
    assert fields["dec"].ucd == "pos.eq.dec;meta.main" and fields["z"].ucd == "src.redshift"
    parsed = votable.to_table()
    assert list(parsed["neighbour2_label"].filled("")) == ["other", ""]
    assert bool(parsed["share"].mask[1]) and parsed["error"][1] == "no ingested spectrum has ..."
    assert not parsed["in_distribution"][0] and bool(parsed["in_distribution"].mask[1])
    assert parsed["reconstruction_percentile"][0] == 42.5


def test_a_lens_answer_table_carries_the_background_lines_and_the_rule_they_were_judged_by():
    background = {
        "z_source": 0.61234,
        "snr": 11.2,
        "lines": {"[O II] 3727": 9.0, "[O III] 5007": 6.1},
        "quiet_host": True,
        "detected": True,
        "threshold": 8.5,
        "combine": "lines",
        "hosts": "quiet",
    }
    rows = [
        {"position": 0, "query": "a", "label": "other", "share": 1.0, "is_target": True, "background": background},
        {"position": 1, "query": "b", "label": "other", "share": 1.0, "is_target": False, "background": None},
    ]
    table = results_table(rows, k=1, meta={"task": "lens"})
    parsed = parse_single_table(io.BytesIO(table_votable(table))).to_table()
    assert parsed["background_z"][0] == pytest.approx(0.61234) and parsed["background_snr"][0] == pytest.approx(11.2)
    assert bool(parsed["background_detected"][0]) and bool(parsed["background_quiet_host"][0])
    assert parsed["background_threshold"][0] == 8.5
    assert (parsed["background_hosts"][0], parsed["background_combine"][0]) == ("quiet", "lines")
    assert bool(parsed["background_threshold"].mask[1])  # no scan: nothing said
    again = Table.read(table_csv(table), format="ascii.ecsv")
    assert again["background_combine"][0] == "lines" and again["background_hosts"][0] == "quiet"
