"""Exports players and tools read: JSPF against a JSON schema of the format, M3U8 through an M3U8 parser, CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import m3u8
import pytest

from genrec.errors import GenrecError
from genrec.serve.exports import APP_URI, FORMATS, export, format_of, song_uri
from genrec.serve.generator import Playlist, Song

SCHEMA = json.loads((Path(__file__).parent / "data" / "jspf.schema.json").read_text(encoding="utf-8"))


def playlist() -> Playlist:
    songs = [Song("s1", "Ocean City", "Kai Hart", 0.42, "hybrid"),
             Song("歌 2", "光梦", "吴月花", 0.21, "hybrid", cluster_size=3),
             Song("s/3?x=1", "Line\nbreak, \"quoted\"", "", 0.05, "popularity")]
    return Playlist("夏日海边 🌊\nnight", songs, "hybrid", note="a note")


def test_jspf_matches_the_schema_and_keeps_every_song():
    document = json.loads(export(playlist(), "jspf"))
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())
    tracks = document["playlist"]["track"]
    assert [t["identifier"][0] for t in tracks] == [song_uri(s.song_id) for s in playlist().songs]
    assert [t["extension"][APP_URI][0]["song_id"] for t in tracks] == ["s1", "歌 2", "s/3?x=1"]
    assert tracks[1]["creator"] == "吴月花" and "creator" not in tracks[2]
    assert document["playlist"]["title"] == "夏日海边 🌊\nnight"


def test_the_schema_rejects_what_is_not_jspf():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"playlist": {"track": [{"title": 3}]}}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"playlist": {"track": [], "songs": []}}, SCHEMA)


def test_m3u8_parses_with_one_entry_per_song_and_no_broken_lines():
    text = export(playlist(), "m3u8")
    assert text.startswith("#EXTM3U\n#PLAYLIST:夏日海边 🌊 night\n")
    parsed = m3u8.loads(text)
    assert [s.uri for s in parsed.segments] == [song_uri(s.song_id) for s in playlist().songs]
    assert [s.title for s in parsed.segments] == ["Kai Hart - Ocean City", "吴月花 - 光梦", 'Line break, "quoted"']


def test_csv_round_trips_through_a_csv_reader():
    text = export(playlist(), "csv")
    assert text.startswith("\ufeffrank,song_id,name,artist,score,system\n")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [r["song_id"] for r in rows] == ["s1", "歌 2", "s/3?x=1"]
    assert rows[2]["name"] == 'Line\nbreak, "quoted"' and rows[0]["rank"] == "1" and float(rows[1]["score"]) == 0.21


def test_json_is_the_playlist_record():
    assert json.loads(export(playlist(), "json")) == playlist().to_dict()


def test_formats_by_suffix_and_unknown_ones_are_one_line_errors():
    assert [format_of(f"x.{suffix}") for suffix in ("jspf", "M3U8", "m3u", "csv", "json")] == \
        ["jspf", "m3u8", "m3u8", "csv", "json"]
    assert set(FORMATS) == {"jspf", "m3u8", "csv", "json"}
    with pytest.raises(GenrecError, match="cannot tell the format"):
        format_of("playlist.txt")
    with pytest.raises(GenrecError, match="unknown format 'xml'"):
        export(playlist(), "xml")
