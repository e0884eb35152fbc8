"""Title memory (genrec.title_memory): a learned row per training title, row 0 for any other title."""

from __future__ import annotations

import torch
from transformers import T5Config

from genrec.model import TigerT5, title_inputs
from genrec.title_memory import TitleMemory, memory_keys, title_keys
from tiny_tiger import tiny_bundle

TRAINED = [[5, 6, 1], [5, 1], [7, 8, 9, 1]]


def padded(rows: list[list[int]], left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids, mask = torch.zeros((len(rows), width), dtype=torch.long), torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        place = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, place], mask[i, place] = torch.tensor(row), 1
    return ids, mask


def test_keys_depend_on_the_tokens_only_not_on_padding():
    right, left = title_keys(*padded(TRAINED)), title_keys(*padded(TRAINED, left=True))
    assert torch.equal(right, left) and len(set(right.tolist())) == 3
    # Order matters, and a prefix is another title.
    assert title_keys(*padded([[6, 5, 1]]))[0] not in right and title_keys(*padded([[5, 6]]))[0] not in right


def test_known_titles_get_their_own_row_and_others_row_zero():
    memory = TitleMemory(3, 4, dropout=0.0).eval()
    memory.set_keys(memory_keys(TRAINED))
    slots = memory.slots(*padded(TRAINED + [[9, 9, 1]]))
    assert sorted(slots[:3].tolist()) == [1, 2, 3] and slots[3].item() == 0


def test_dropout_sends_titles_to_row_zero_in_training_only():
    memory = TitleMemory(3, 4, dropout=1.0)
    memory.set_keys(memory_keys(TRAINED))
    assert memory.train().slots(*padded(TRAINED)).tolist() == [0, 0, 0]
    assert 0 not in memory.eval().slots(*padded(TRAINED)).tolist()


def memory_model(tokenizer, titles: list[str]) -> TigerT5:
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                      num_heads=2, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id, title_memory_size=len(titles),
                      title_memory_dropout=0.0)
    model = TigerT5(config).eval()
    model.title_memory.set_keys(memory_keys(tokenizer(titles)["input_ids"]))
    return model


def test_generation_reads_the_memory_and_it_survives_saving(tmp_path):
    tokenizer = tiny_bundle().tokenizer
    model = memory_model(tokenizer, ["summer beach", "worship"])
    titles = ["summer beach", "worship", "rainy day"]
    start = torch.zeros((3, 1), dtype=torch.long)
    with torch.no_grad():
        # title_inputs (what generate() gets) builds the same encoder input as a forward pass from token ids.
        embedded = model(**title_inputs(model, tokenizer, titles, 16), decoder_input_ids=start).logits
        from_ids = model(**tokenizer(titles, return_tensors="pt", padding=True), decoder_input_ids=start).logits
        assert torch.allclose(embedded, from_ids, atol=1e-6)
        # A trained title's row changes its output; an unseen title reads row 0.
        model.title_memory.table.weight[1:] += 1.0
        moved = model(**title_inputs(model, tokenizer, titles, 16), decoder_input_ids=start).logits
    assert not torch.allclose(moved[:2], embedded[:2]) and torch.allclose(moved[2], embedded[2], atol=1e-6)
    model.save_pretrained(tmp_path)
    reloaded = TigerT5.from_pretrained(tmp_path).eval()
    assert torch.equal(reloaded.title_memory.keys, model.title_memory.keys)
    with torch.no_grad():
        again = reloaded(**title_inputs(reloaded, tokenizer, titles, 16), decoder_input_ids=start).logits
    assert torch.allclose(again, moved, atol=1e-6)
