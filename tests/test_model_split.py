"""The train/held-out split (hunt G, finding 5): articles with one text fall on one side."""

import random

from spanbank import model


def test_articles_with_the_same_text_fall_on_the_same_side():
    """PolNeAR stores one article twice (two ids, byte-identical text); the split by id held out
    one copy and trained on the other. Every seed must keep such a pair together."""
    ids = [f"a{i:03d}" for i in range(40)]
    texts = [f"text {i}" for i in range(40)]
    texts[7] = texts[31] = texts[12] = "the same text"
    for seed in range(30):
        train, held = model.split_articles(ids, 0.2, seed, texts)
        assert train | held == set(ids) and not train & held
        together = {"a007", "a012", "a031"}
        assert together <= train or together <= held, seed
        assert model.split_articles(ids, 0.2, seed, texts) == (train, held)  # deterministic


def test_distinct_texts_split_as_the_plain_shuffle_of_ids():
    """With no repeated text the split is the seeded shuffle of ids it always was (the README's
    benchmark split is unchanged)."""
    ids = [f"a{i:03d}" for i in range(50)]
    order = sorted(ids)
    random.Random(4).shuffle(order)
    got = model.split_articles(ids, 0.1, 4, [f"t{i}" for i in range(50)])
    assert got == (set(order[5:]), set(order[:5]))
