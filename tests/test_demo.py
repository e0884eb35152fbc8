"""Demo data: deterministic from the seed, and learnable (titles reveal the songs)."""

import itertools
from collections import Counter
import re

import numpy as np

from conftest import run_stage
from genrec.data.demo import generate_demo


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = generate_demo(300, 200, seed=1), generate_demo(300, 200, seed=1), generate_demo(300, 200, seed=2)
    assert a.titles == b.titles and a.playlist_songs == b.playlist_songs
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.playlist_songs != c.playlist_songs


def test_titles_mix_english_and_chinese():
    demo = generate_demo(500, 400)
    chinese = sum(bool(re.search(r"[\u4e00-\u9fff]", t)) for t in demo.titles)
    assert 0.3 < chinese / len(demo.titles) < 0.7


def jaccard(a, b):
    return len(set(a) & set(b)) / len(set(a) | set(b))


def test_playlists_sharing_a_title_share_more_songs_than_random_ones():
    demo = generate_demo(800, 600, n_tastes=20, seed=3)
    rng = np.random.default_rng(0)
    pairs = [tuple(rng.choice(len(demo.titles), 2, replace=False)) for _ in range(3000)]
    same = [jaccard(demo.playlist_songs[i], demo.playlist_songs[j]) for i, j in pairs
            if demo.titles[i] == demo.titles[j]]
    same += [jaccard(demo.playlist_songs[i], demo.playlist_songs[j])
             for i, j in itertools.combinations(range(60), 2) if demo.titles[i] == demo.titles[j]]
    random = [jaccard(demo.playlist_songs[i], demo.playlist_songs[j]) for i, j in pairs]
    assert len(same) >= 5
    assert np.mean(same) > 3 * np.mean(random)


def test_vectors_reflect_the_tastes():
    demo = generate_demo(600, 100, n_tastes=10)
    normed = demo.vectors / np.linalg.norm(demo.vectors, axis=1, keepdims=True)
    sims = normed @ normed.T
    same = demo.song_taste[:, None] == demo.song_taste[None, :]
    np.fill_diagonal(same, False)
    off_diagonal = ~np.eye(len(sims), dtype=bool)
    assert sims[same].mean() > sims[off_diagonal & ~same].mean() + 0.3


def test_popularity_is_heavy_tailed():
    demo = generate_demo(1000, 1500)
    counts = np.array(sorted(Counter(s for p in demo.playlist_songs for s in p).values(), reverse=True))
    top_share = counts[: len(counts) // 10].sum() / counts.sum()
    assert top_share > 2 * 0.1  # the top tenth of songs holds over twice its uniform share


def test_prepare_data_writes_the_schema_and_a_split(workdir):
    run_stage("prepare_data.py", "--prepare.demo_songs", "300", "--prepare.demo_playlists", "200", cwd=workdir)
    folder = workdir / "data" / "demo"
    assert (folder / "gen_playlist_info.csv").read_text(encoding="utf-8").startswith("glid,listname\n")
    assert (folder / "gen_playlist_song.csv").read_text(encoding="utf-8").startswith("special_gid,mixsongid\n")
    assert (folder / "gen_song_info.csv").read_text(encoding="utf-8").startswith("mixsongid,songname,singername\n")
    header = (folder / "song_vectors.csv").read_text(encoding="utf-8").split("\n")[0].split(",")
    assert header[0] == "song_id" and len(header) == 101
    splits = (folder / "playlist_split.csv").read_text(encoding="utf-8").split("\n")[1:]
    assert {line.split(",")[1] for line in splits if line} == {"train", "val", "test"}
    assert (folder / "manifest.json").exists() and (workdir / "outputs" / "data_report.json").exists()
