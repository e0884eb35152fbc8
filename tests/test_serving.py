"""Serving from a model bundle: a copied bundle serves every system through the API, the prompt and batch mode,
with exactly the songs asked, exclusions, an artist cap, a visible fallback, and a refusal of tampered files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import pytest

from conftest import REPO, run_stage
from genrec.errors import ArtifactError, GenrecError
from genrec.serve.export import best_system
from genrec.serve.generator import assemble

TITLE = "late night drive"


@pytest.fixture(scope="module")
def shipped(tiny_pipeline, tmp_path_factory):
    """The pipeline's bundle, copied alone into an empty folder (no data/, no outputs/, no models/ beside it)."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(tiny_pipeline / "models" / "bundle", elsewhere / "shipped")
    return tiny_pipeline, elsewhere / "shipped"


@pytest.fixture(scope="module")
def generator(shipped):
    from genrec import PlaylistGenerator
    return PlaylistGenerator.load(shipped[1])


def test_the_copied_bundle_serves_every_system_with_exactly_the_songs_asked(generator):
    assert set(generator.systems) == {"model", "hybrid", "retrieved", "knn"}
    catalogue = set(generator.names)
    for system in generator.systems:
        for sample in (False, True):
            playlist = generator.generate(TITLE, num_songs=30, system=system, sample=sample, seed=4)
            ids = [song.song_id for song in playlist.songs]
            assert len(ids) == 30 and len(set(ids)) == 30, (system, sample)
            assert set(ids) <= catalogue
            assert playlist.system == system
            own = [song.score for song in playlist.songs if song.system == system]
            assert own and own == sorted(own, reverse=True) and any(own), (system, own[:5])


def assert_same_decoding(model_dir, titles, settings):
    """The generator's plain-torch decoding (genrec.serve.inference) gives transformers' songs and scores."""
    from genrec.decode.decoding import decode
    from genrec.model.t5 import load_tiger
    from genrec.serve import inference

    plain = inference.load_inference(model_dir)
    assert isinstance(plain.model, inference.TigerInference)
    ours = inference.decode(plain, titles, settings)
    theirs = decode(load_tiger(model_dir, check_corpus=False), titles, settings)
    for title, mine, reference in zip(titles, ours, theirs):
        assert [song for song, _ in mine.songs] == [song for song, _ in reference.songs], title
        assert [score for _, score in mine.songs] == pytest.approx([score for _, score in reference.songs], abs=1e-4)


def test_plain_torch_decoding_matches_transformers(shipped):
    from genrec.decode.decoding import DecodingSettings

    titles = [TITLE, "夏日海边", "gym", "zzzz qqqq", "chill " * 40]
    for beams, songs in ((10, 10), (12, 5), (3, 1)):
        assert_same_decoding(shipped[1] / "model", titles, DecodingSettings(num_beams=beams, num_songs=songs, batch_size=2))


def test_the_generator_never_imports_transformers(shipped):
    script = ("import sys; from genrec import PlaylistGenerator; g = PlaylistGenerator.load(sys.argv[1]); "
              "g.generate('late night drive', system='hybrid'); g.generate('x', sample=True); "
              "print(sorted(m for m in ('transformers', 'sentence_transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", script, str(shipped[1])], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_default_system_is_the_best_on_validation(shipped, generator):
    serving = json.loads((shipped[1] / "serving.json").read_text(encoding="utf-8"))
    validation = {k: v for k, v in serving["validation"].items() if k in generator.systems}
    assert set(validation) == set(generator.systems)
    assert generator.default_system == serving["default_system"] == best_system(validation)
    assert generator.generate(TITLE).system == generator.default_system


def test_best_system_prefers_the_simpler_one_on_ties():
    assert best_system({"model": 0.2, "knn": 0.3, "hybrid": 0.3}) == "knn"
    assert best_system({"model": 0.2, "knn": 0.1, "retrieved": 0.25, "hybrid": 0.26}) == "hybrid"


@pytest.mark.parametrize("sample", [False, True])
def test_exclude_and_artist_cap_in_beam_and_sampling_modes(generator, sample):
    first = generator.generate(TITLE, num_songs=12, system="model", sample=sample, seed=1)
    excluded = [song.song_id for song in first.songs[:5]]
    capped = generator.generate(TITLE, num_songs=12, system="model", sample=sample, seed=1, exclude=excluded,
                                max_per_artist=1)
    ids = [song.song_id for song in capped.songs]
    assert len(ids) == 12 and not set(ids) & set(excluded)
    artists = Counter(song.artist for song in capped.songs)
    assert max(artists.values()) == 1
    uncapped = Counter(song.artist for song in generator.generate(TITLE, num_songs=12, system="model").songs)
    assert max(uncapped.values()) > 1  # the cap did something


def test_sampling_is_seeded_and_varies_with_the_seed(generator):
    one = [s.song_id for s in generator.generate(TITLE, system="model", sample=True, seed=5).songs]
    again = [s.song_id for s in generator.generate(TITLE, system="model", sample=True, seed=5).songs]
    other = [s.song_id for s in generator.generate(TITLE, system="model", sample=True, seed=6).songs]
    assert one == again and one != other


def test_a_title_nothing_resembles_falls_back_visibly(generator):
    playlist = generator.generate("ЖЖЖ ЩЩЩ", num_songs=7)
    assert "cannot read" in playlist.note and len(playlist.songs) == 7
    assert {song.system for song in playlist.songs} == {"popularity"}
    assert not generator.generate(TITLE).note


def test_batch_answers_each_title_as_one_title_would(generator):
    titles = [TITLE, "ЖЖЖ ЩЩЩ", "夏日海边"]
    batch = generator.generate_batch(titles, num_songs=8, system="hybrid")
    alone = [generator.generate(t, num_songs=8, system="hybrid") for t in titles]
    assert [[s.song_id for s in p.songs] for p in batch] == [[s.song_id for s in p.songs] for p in alone]


@pytest.mark.parametrize("options, message", [
    ({"num_songs": 0}, "num_songs must be a whole number from 1"),
    ({"num_songs": 10 ** 9}, "num_songs must be a whole number from 1"),
    ({"num_songs": "5"}, "num_songs must be a whole number"),
    ({"temperature": -1.0}, "temperature must be a number above 0"),
    ({"top_p": 1.5}, "top_p must be a number above 0"),
    ({"seed": 10 ** 20}, "seed must be a whole number"),
    ({"system": "bogus"}, "unknown system 'bogus'"),
    ({"exclude": ["no-such-song"]}, "'no-such-song' is not a song of this model's catalogue"),
    ({"exclude": [3]}, "exclude must be a list of song ids"),
    ({"max_per_artist": -1}, "max_per_artist must be a whole number"),
    ({"colour": "red"}, "unknown option 'colour'"),
])
def test_bad_options_are_one_line_errors(generator, options, message):
    with pytest.raises(GenrecError, match=re.escape(message)):
        generator.generate(TITLE, **options)


@pytest.mark.parametrize("title, message", [("", "empty"), ("\u200b \u200b", "empty"), ("x" * 501, "at most 500"),
                                            (None, "not text")])
def test_bad_titles_are_one_line_errors(generator, title, message):
    with pytest.raises(GenrecError, match=message):
        generator.generate(title)


def test_assemble_skips_repeats_exclusions_and_capped_artists():
    artists = {"a": "x", "b": "x", "c": "y", "d": "", "e": "x"}
    streams = [("model", [("a", 0.5), ("b", 0.4), ("a", 0.3)]), ("popularity", [("c", 0.2), ("d", 0.1), ("e", 0.0)])]
    assert assemble(streams, 3, {"c"}, 1, artists) == [("a", 0.5, "model"), ("d", 0.1, "popularity")]
    assert assemble(streams, 2, set(), 0, artists) == [("a", 0.5, "model"), ("b", 0.4, "model")]


@pytest.mark.parametrize("change", ["edit", "remove", "add"])
def test_a_tampered_bundle_is_refused(shipped, tmp_path, change):
    from genrec import PlaylistGenerator

    bundle = tmp_path / "bundle"
    shutil.copytree(shipped[1], bundle)
    if change == "edit":
        songs = bundle / "songs.json"
        songs.write_text(songs.read_text(encoding="utf-8").replace('"', "'", 1), encoding="utf-8")
        expected = "songs.json was changed after the bundle was exported"
    elif change == "remove":
        (bundle / "model" / "config.json").unlink()
        expected = "model/config.json is missing"
    else:
        (bundle / "model" / "extra.bin").write_bytes(b"0")
        expected = "model/extra.bin, which is not part of the bundle"
    with pytest.raises(ArtifactError, match=re.escape(expected)):
        PlaylistGenerator.load(bundle)
    if change != "edit":
        return
    proc = run_stage("generate_playlist.py", "--model", str(bundle), "--title", TITLE, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and expected in proc.stderr


def test_a_bundle_with_its_own_playlists_file_and_a_version_1_bundle_serve_alike(shipped, generator, tmp_path):
    """A model without retrieval ships the training playlists as playlists.npz; version 1 bundles shipped them as
    playlists.json and still load. Here both are added to the retrieval bundle, which then fits title kNN from
    them instead of sharing the retriever's."""
    from genrec import PlaylistGenerator
    from genrec.artifacts import sha256_of, write_json
    from genrec.data.playlists_file import write_playlists
    from genrec.model.retrieval import read_retrieval_file

    _, playlists = read_retrieval_file(shipped[1] / "model")
    expected = [song.song_id for song in generator.generate(TITLE, num_songs=10, system="knn").songs]
    for version, name in ((2, "playlists.npz"), (1, "playlists.json")):
        bundle = tmp_path / f"version_{version}"
        shutil.copytree(shipped[1], bundle)
        if version == 2:
            write_playlists(bundle / name, playlists)
        else:
            write_json(bundle / name, {"ids": playlists.ids, "titles": playlists.titles, "songs": playlists.songs})
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        manifest["version"], manifest["files"][name] = version, sha256_of(bundle / name)
        write_json(bundle / "manifest.json", manifest)
        loaded = PlaylistGenerator.load(bundle)
        assert loaded.knn.members is not loaded.tiger.retriever.knn.members  # fitted from the bundle's own file
        assert [song.song_id for song in loaded.generate(TITLE, num_songs=10, system="knn").songs] == expected
    manifest["version"] = 3
    write_json(bundle / "manifest.json", manifest)
    with pytest.raises(ArtifactError, match="is a version 3 bundle; this code reads versions 1, 2: export it again"):
        PlaylistGenerator.load(bundle)


def test_script_one_title_batch_and_prompt_from_the_copied_bundle(shipped, tmp_path):
    bundle = str(shipped[1])
    record = json.loads(run_stage("generate_playlist.py", "--model", bundle, "--title", "夏日海边", "--json",
                                  "--num-songs", "6", "--system", "knn", cwd=tmp_path).stdout)
    assert record["system"] == "knn" and len(record["songs"]) == 6
    assert {"song_id", "name", "artist", "score", "system"} <= record["songs"][0].keys()
    (tmp_path / "titles.txt").write_text(f"{TITLE}\nrainy day\n", encoding="utf-8")
    proc = run_stage("generate_playlist.py", "--model", bundle, "--input", "titles.txt", "--output", "out.jsonl",
                     cwd=tmp_path)
    assert re.search(r"2 playlists written to out.jsonl \([\d.]+ titles/s\)", proc.stdout)
    run_stage("generate_playlist.py", "--model", bundle, "--input", "titles.txt", "--output", "lists",
              "--format", "m3u8", "--num-songs", "4", cwd=tmp_path)
    files = sorted(p.name for p in (tmp_path / "lists").iterdir())
    assert files == ["001-late-night-drive.m3u8", "002-rainy-day.m3u8"]
    assert (tmp_path / "lists" / files[0]).read_text(encoding="utf-8").count("#EXTINF:") == 4
    first_song = record["songs"][0]["song_id"]
    session = f":system retrieved\n:artist-cap 1\n:exclude {first_song}\n:exclude nope\n:seed 99999999999999999999\n" \
              f":settings\n:save early.csv\n夏日海边\n:save 夏日.jspf\n:save x.txt\nexit\n"
    out = run_stage("generate_playlist.py", "--model", bundle, "--num-songs", "6", cwd=tmp_path, input=session).stdout
    assert "system = retrieved" in out and "'nope' is not a song id" in out and ":seed needs a whole number" in out
    assert "system retrieved, at most 1 per artist, 1 excluded" in out
    playlist = out.split("夏日海边\n", 1)[1]
    assert "(retrieved" in playlist and first_song not in playlist
    assert "no playlist yet" in out and "saved 6 songs to 夏日.jspf" in out and "cannot tell the format" in out
    saved = json.loads((tmp_path / "夏日.jspf").read_text(encoding="utf-8"))
    assert saved["playlist"]["title"] == "夏日海边" and len(saved["playlist"]["track"]) == 6


def test_missing_bundle_says_what_to_run(tmp_path):
    proc = run_stage("generate_playlist.py", "--title", TITLE, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "run_pipeline.py" in proc.stderr


def test_readme_python_api_example_runs(shipped, tmp_path):
    """The README's Python example, run as written against a bundle at its path (models/bundle)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "PlaylistGenerator" in b]
    assert blocks, "README.md has no Python example of the API"
    (tmp_path / "models").mkdir()
    shutil.copytree(shipped[1], tmp_path / "models" / "bundle")
    (tmp_path / "example.py").write_text(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n" + blocks[0],
                                         encoding="utf-8")
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()


@pytest.mark.parametrize("output", ["out_dir", "titles.txt/out.jsonl"])
def test_an_output_path_that_cannot_be_written_is_one_line_and_loses_nothing(shipped, tmp_path, output):
    (tmp_path / "titles.txt").write_text(f"{TITLE}\n", encoding="utf-8")
    (tmp_path / "out_dir").mkdir()
    (tmp_path / "out_dir" / "keep.txt").write_text("old", encoding="utf-8")
    proc = run_stage("generate_playlist.py", "--model", str(shipped[1]), "--input", "titles.txt", "--output", output,
                     cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "earlier artifacts are intact" in proc.stderr
    assert (tmp_path / "out_dir" / "keep.txt").read_text(encoding="utf-8") == "old"
    assert (tmp_path / "titles.txt").read_text(encoding="utf-8") == f"{TITLE}\n"


def test_a_truncated_weights_file_is_an_artifact_error(shipped, tmp_path):
    from genrec.model.t5 import load_tiger

    model = tmp_path / "tiger_final"
    shutil.copytree(shipped[0] / "models" / "tiger_final", model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="cannot load the model in .*rerun train_tiger.py"):
        load_tiger(model, check_corpus=False)


def test_seed_text_matches_exactly_or_folded_and_refuses_unknown_or_ambiguous_seeds():
    from genrec.serve.seeds import SeedResolver

    resolver = SeedResolver({"1": "Halo", "2": "Crazy in Love", "3": "Song", "4": "Song"},
                            {"1": "Beyoncé", "2": "Beyoncé", "3": "Same Artist", "4": "Same Artist"})
    assert resolver.resolve(["Halo - Beyoncé", "  crazy IN love  -  BEYONCE ", "1"]) == ["1", "2"]
    with pytest.raises(GenrecError, match="seed 'Halo - Rihanna' is not a song") as unknown:
        resolver.resolve(["Halo - Beyonce", "Halo - Rihanna"])
    assert "\n" not in str(unknown.value)
    with pytest.raises(GenrecError, match="seed 'song - same artist' names 2 songs"):
        resolver.resolve(["song - same artist"])


def test_seeds_are_continued_and_never_recommended_back(generator):
    from genrec.serve.seeds import fold_song_text

    given = generator.generate(TITLE, num_songs=10, system="knn").songs
    folded = generator.seed_resolver.folded
    unique = next(s for s in given[1:] if len(folded.get(fold_song_text(f"{s.name} - {s.artist}"), [])) == 1)
    seeds = [given[0].song_id, f"{unique.name.upper()} - {unique.artist}"]
    for system in ("", "model", "knn"):
        playlist = generator.generate(TITLE, num_songs=25, seeds=seeds, **({"system": system} if system else {}))
        ids = [song.song_id for song in playlist.songs]
        assert len(ids) == 25 and len(set(ids)) == 25
        assert not {given[0].song_id, unique.song_id} & set(ids), system
        assert playlist.system == (system or generator.seeded.system)
    # Seeds lead somewhere else than the title alone, and an unreadable title still gets the seeds' company.
    assert ids != [song.song_id for song in generator.generate(TITLE, num_songs=25).songs]
    assert generator.generate("☃☃☃", num_songs=5, seeds=seeds).system == generator.seeded.system
    with pytest.raises(GenrecError, match="seed 'no such song - nobody'"):
        generator.generate(TITLE, seeds=[given[0].song_id, "no such song - nobody"])


def test_the_prompt_reads_seeds_after_a_bar(generator, tmp_path):
    from genrec.serve.repl import HELP, repl

    songs = [s.song_id for s in generator.generate(TITLE, num_songs=2, system="knn").songs]
    lines = iter([":json", f"{TITLE} | {songs[0]}; {songs[1]}", f"{TITLE} | nope", "exit"])
    out: list[str] = []
    saved = generator.options
    try:
        repl(generator, tmp_path / "history", read=lambda _: next(lines), write=out.append)
    finally:
        generator.options = saved
    record = json.loads(next(line for line in out if line.startswith("{")))
    assert record["title"] == TITLE and not set(songs) & {s["song_id"] for s in record["songs"]}
    assert any("seed 'nope' is not a song" in line for line in out)
    assert "TITLE | SONG; SONG" in HELP


def test_the_script_continues_seeds_and_refuses_an_unknown_one_before_any_title(shipped, generator, tmp_path):
    songs = [s.song_id for s in generator.generate(TITLE, num_songs=2, system="knn").songs]
    script = [sys.executable, str(REPO / "generate_playlist.py"), "--model", str(shipped[1]), "--title", TITLE]
    done = subprocess.run([*script, "--json", "--seeds", f" {songs[0]} ;{songs[1]}; "], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout)
    assert record["system"] == generator.seeded.system and len(record["songs"]) == 20
    assert not set(songs) & {s["song_id"] for s in record["songs"]}
    refused = subprocess.run([*script, "--seeds", f"{songs[0]}; nope"], cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip().splitlines()[-1].startswith("error: seed 'nope' is not a song")


def test_the_bundle_records_the_seeded_system_the_continuation_evaluation_found_best(tmp_path):
    from genrec.artifacts import write_json, write_manifest
    from genrec.serve.export import seeded_system
    from genrec.serve.seeds import SEED_HYBRID, SEED_WALK, SeededRanking

    path = tmp_path / "continuation_metrics.json"
    assert seeded_system(path) is None  # never evaluated: the generator's default walk
    tuned = {"walk": {"title_share": 0.1, "popularity_penalty": 0.0, "cooccurrence_share": 0.5},
             "hybrid": {"partner": "walk", "weight": 0.3, "c": 10.0}}
    result = {"model": True, "versus_best_baseline": {"system": "hybrid"},
              "categories": [{"name": n, "seeds": k, "title": t, "random": False}
                             for n, k, t in (("title only", 0, True), ("first 5", 5, True), ("first 25", 25, True),
                                             ("first 5, no title", 5, False))],
              "tuning": {n: {**tuned, "walk": {**tuned["walk"], "title_share": i / 10}}
                         for i, n in enumerate(("title only", "first 5", "first 25", "first 5, no title"))}}
    write_json(path, result)
    write_manifest(path, [], {})
    seeded = seeded_system(path)
    assert seeded["system"] == SEED_HYBRID and len(seeded["by_seeds"]) == 4
    assert seeded["by_seeds"][1] == {"seeds": 5, "title": True, "random": False, "title_share": 0.1,
                                     "popularity_penalty": 0.0, "cooccurrence_share": 0.5, "weight": 0.3, "c": 10.0}
    nearest = SeededRanking.parameters(SimpleNamespace(seeded=seeded), 3, True)
    assert (nearest["seeds"], nearest["title"]) == (5, True)
    assert SeededRanking.parameters(SimpleNamespace(seeded=seeded), 40, True)["seeds"] == 25
    assert SeededRanking.parameters(SimpleNamespace(seeded=seeded), 1, False)["title"] is False
    write_json(path, {**result, "model": False})  # its hybrid fused title kNN, which no bundle serves seeded
    write_manifest(path, [], {})
    assert seeded_system(path)["system"] == SEED_WALK
