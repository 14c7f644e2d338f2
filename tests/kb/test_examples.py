"""Reading an astronomer's catalog of examples: each row's identifier and label, or a sentence naming the row
and what to fix."""

import pytest

from kb.examples import read_examples

VOTABLE = b"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="RA" datatype="double" unit="deg"/><FIELD name="DEC" datatype="double" unit="deg"/>
<FIELD name="class" datatype="char" arraysize="*"/>
<DATA><TABLEDATA><TR><TD>-0.5</TD><TD>1.25</TD><TD>E+A</TD></TR></TABLEDATA></DATA>
</TABLE></RESOURCE></VOTABLE>"""


def test_each_row_is_named_by_the_first_column_it_fills():
    rows = read_examples(
        b"specobjid,plate,mjd,fiber,ra,dec,label\n"
        b"10376293541461094400,,,,,,lens\n"  # past 2**63: kept as text, not rounded through a float
        b",266,51630,12,,,\n"
        b",,,,150.5,2.25,other\n"
    )
    assert [(e.row, e.key, e.value, e.label) for e in rows] == [
        (1, "specobjid", "10376293541461094400", "lens"),
        (2, "plate_mjd_fiber", "266-51630-12", None),
        (3, "position", (150.5, 2.25), "other"),
    ]
    assert read_examples(b"identifier\n266-51630-12\n")[0].key == "plate_mjd_fiber"


def test_a_votable_by_position_with_a_class_column():
    (example,) = read_examples(VOTABLE, "mine.vot")
    assert example.key == "position" and example.value == (359.5, 1.25) and example.label == "E+A"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"specobjid\n", "has no rows"),
        (b"name,z\nNGC 1,0.1\n", r"no column names a spectrum: give specobjid.*\(columns found: name, z\)"),
        (b"ra,dec\n,1.0\n", "row 1: RA '' and Dec '1.0' must both be numbers, in degrees"),
        (b"ra,dec\n10,12:30:00\n", "row 1: RA '10' and Dec '12:30:00' must both be numbers"),
        (b"ra,dec\n10,1\n10,-91\n", "row 2: Dec -91 is not between -90 and 90 degrees"),
        (b"specobjid,ra,dec\n1,,\n,,\n", "row 2 names no spectrum"),
        (b"\xff\xfe\x00s", "neither a UTF-8 CSV nor a VOTable"),
        (b"<?xml version='1.0'?><VOTABLE>", "is not a VOTable astropy can read"),
    ],
)
def test_a_catalog_it_cannot_read_says_which_row_and_what_to_fix(data, message):
    with pytest.raises(ValueError, match=message):
        read_examples(data, "mine.csv")
