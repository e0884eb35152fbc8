"""The optional sentence-vector view of titles (network.title_encoder): training, reloading, decoding."""

import pytest
import torch

from conftest import TINY_DEMO, TINY_MODEL, run_stage
from test_serving import assert_same_decoding
from genrec.errors import ConfigError
from genrec.decode.decoding import DecodingSettings, decode
from genrec.model.t5 import load_tiger
from genrec.model.title_vectors import TitleVectorEncoder, encoder_folder


def test_packaged_encoder_puts_related_titles_closer_than_unrelated_ones():
    encoder = TitleVectorEncoder("minilm")
    gym, workout, sleep = encoder.encode(["Gym", "workout", "sleep"])
    assert torch.linalg.norm(gym).item() == pytest.approx(1.0, abs=1e-5)
    assert float(gym @ workout) > float(gym @ sleep) + 0.2
    assert encoder.vectors(["GYM"])[0] is encoder.vectors(["gym"])[0]  # folded and cached once


def test_a_folder_that_is_not_an_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="neither 'minilm' nor a local sentence-transformers folder"):
        encoder_folder(str(tmp_path))


def test_model_with_title_vectors_trains_reloads_and_decodes_real_songs(tiny_demo):
    for script in ("train_rq_kmeans.py", "prepare_corpus.py"):
        run_stage(script, *TINY_DEMO, cwd=tiny_demo)
    run_stage("train_tiger.py", *TINY_DEMO, *TINY_MODEL, "--network.title_encoder", "minilm", cwd=tiny_demo)
    bundle = load_tiger(tiny_demo / "models" / "tiger_final")
    assert bundle.title_encoder is not None and bundle.model.title_projection is not None
    titles = ["late night drive", "夏日海边"]
    first = decode(bundle, titles, DecodingSettings(num_songs=5, num_beams=5))
    again = decode(load_tiger(tiny_demo / "models" / "tiger_final"), titles, DecodingSettings(num_songs=5, num_beams=5))
    assert [d.songs for d in first] == [d.songs for d in again]
    for d in first:
        assert len(d.songs) == 5 and d.invalid == 0
        assert all(song in bundle.vocab.songs for song, _ in d.songs)
    # The generator reads the same model, title vectors included, in plain torch.
    assert_same_decoding(tiny_demo / "models" / "tiger_final", titles, DecodingSettings(num_songs=5, num_beams=5))


def test_plain_torch_encoder_gives_sentence_transformers_vectors():
    from genrec.model import bert_encoder

    titles = ["late night drive", "夏日海边", "Gym 💪", "x" * 2000, "ça va", ""]
    plain = TitleVectorEncoder("minilm", plain_torch=True)
    assert isinstance(plain.model, bert_encoder.BertSentenceEncoder)
    assert torch.allclose(plain.encode(titles), TitleVectorEncoder("minilm").encode(titles), atol=1e-5)


def test_encoder_folders_of_another_shape_are_not_run_in_plain_torch(tmp_path):
    import shutil

    from genrec.model import bert_encoder

    folder = tmp_path / "encoder"
    shutil.copytree(encoder_folder("minilm"), folder)
    assert bert_encoder.supported(folder)
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(pooling.read_text().replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true'))
    assert not bert_encoder.supported(folder)


def test_titles_encoded_at_once_have_the_vectors_one_process_decodes_with_in_every_shard():
    """evaluate_tiger.py encodes every evaluated title before decoding: a title encoded in another batch moves in its
    last bits, enough to swap two near-tied songs, so a torchrun rank would decode otherwise than one process."""
    titles = [f"{mood} {what} {n}" for n, (mood, what) in enumerate(
        (m, w) for m in ("chill", "late night", "summer beach", "gym") for w in ("drive", "songs", "party mix"))]
    batches = [titles[i:i + 4] for i in range(0, len(titles), 4)]
    one_process, other_rank = TitleVectorEncoder("minilm"), TitleVectorEncoder("minilm")
    for encoder in (one_process, other_rank):
        encoder.vectors(titles)
    decoded = {t: v for batch in batches for t, v in zip(batch, one_process.vectors(batch))}
    for batch in batches[1::2]:
        assert all(torch.equal(v, decoded[t]) for t, v in zip(batch, other_rank.vectors(batch)))
    # Encoded batch by batch, as decoding alone would, the rank's vectors are not one process's.
    by_batch = TitleVectorEncoder("minilm")
    alone = [(t, v) for batch in batches[1::2] for t, v in zip(batch, by_batch.vectors(batch))]
    assert not all(torch.equal(v, decoded[t]) for t, v in alone)
