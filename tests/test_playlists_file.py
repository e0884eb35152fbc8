"""The compact training-playlists file (genrec.data.playlists_file): what a retrieval model and a bundle keep."""

from __future__ import annotations

import numpy as np
import pytest

from genrec.data.playlists_file import read_playlists, write_playlists
from genrec.errors import ArtifactError
from genrec.evaluate.baselines import TrainingPlaylists

PLAYLISTS = TrainingPlaylists(
    titles=["夏日海边 🌊", "", "late night drive", "Beyoncé\ttabs\nand lines"],
    songs=[["s1", "s2", "s3"], ["s2"], [], ["s3", "s1", "sé4"]],
    ids=["p0", "p1", "p2", "p-3"])


def test_playlists_come_back_equal_in_order_with_one_string_per_song(tmp_path):
    path = tmp_path / "playlists.npz"
    write_playlists(path, PLAYLISTS)
    back = read_playlists(path, "rerun it")
    assert back == PLAYLISTS
    # Every mention of a song is the same object: memory grows with distinct songs, not playlist-track rows.
    assert back.songs[0][0] is back.songs[3][1] and back.songs[0][1] is back.songs[1][0]


def test_no_playlists_and_empty_playlists_round_trip(tmp_path):
    for playlists in (TrainingPlaylists([], [], []), TrainingPlaylists(["a", "b"], [[], []], ["1", "2"])):
        write_playlists(tmp_path / "p.npz", playlists)
        assert read_playlists(tmp_path / "p.npz", "rerun it") == playlists


def test_a_failed_write_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "playlists.npz"
    write_playlists(path, PLAYLISTS)
    before = path.read_bytes()
    with pytest.raises(AttributeError):
        write_playlists(path, TrainingPlaylists(["x"], [[None]], ["1"]))  # a song id that is not a string
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["playlists.npz"]


def rewritten(path, **changes):
    with np.load(path) as saved:
        arrays = {name: saved[name] for name in saved.files}
    arrays.update(changes)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize("damage, expected", [
    ("missing", "No such file"),
    ("truncated", "unreadable"),
    ("no titles", "titles_utf8"),
    ("lengths", "its arrays disagree in length"),
    ("index", "a song index is outside its song table"),
    ("pickled", "Object arrays cannot be loaded"),
])
def test_a_damaged_file_is_one_line_naming_it_and_the_remedy(tmp_path, damage, expected):
    path = tmp_path / "playlists.npz"
    write_playlists(path, PLAYLISTS)
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "no titles":
        with np.load(path) as saved:
            arrays = {name: saved[name] for name in saved.files if name != "titles_utf8"}
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    elif damage == "lengths":
        rewritten(path, playlist_ends=np.array([3, 4], dtype=np.int64))
    elif damage == "index":
        rewritten(path, song_index=np.array([0, 1, 2, 1, 2, 0, 9], dtype=np.int32))
    else:
        rewritten(path, song_index=np.array([0, 1, 2, 1, 2, 0, 3], dtype=object))
    with pytest.raises(ArtifactError) as err:
        read_playlists(path, "rerun train_tiger.py")
    message = str(err.value)
    assert "\n" not in message and str(path) in message and message.endswith("rerun train_tiger.py")
    assert expected in message
