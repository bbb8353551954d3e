import numpy as np

from predictor.base import PredictionInput
from predictor.dataset import calibration_rank, is_test_prompt
from predictor.features import DENSE_NAMES, NGRAM_BUCKETS, dense_features, hashed_ngrams, prompt_kind, prompt_kind_of


def feats(text: str, **kw) -> dict[str, float]:
    return dict(zip(DENSE_NAMES, dense_features(PredictionInput(text, kw.get("messages", 1), None,
                                                                kw.get("system", False)))))


def test_cues_fire_on_their_wording():
    assert feats("Write an essay about rain")["cue_long_form"] == 1.0
    assert feats("Give me 5 tips for sleeping")["cue_count_asked"] == 1.0
    assert feats("Answer yes or no: is it raining?")["cue_short"] == 1.0
    assert feats("Which is NOT a prime?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer:")["cue_multiple_choice"] == 1.0
    assert feats("hello there")["cue_long_form"] == 0.0


def test_shape_and_conversation_fields():
    f = feats("hi?", messages=3, system=True)
    assert len(f) == len(DENSE_NAMES)
    assert f["messages"] == 3 and f["has_system_prompt"] == 1.0 and f["ends_with_question"] == 1.0
    assert dense_features(PredictionInput("", 0, None)).dtype == np.float32


def test_hashed_ngrams_are_stable_and_bounded():
    index, weight = hashed_ngrams("The cat sat on the mat. The cat!")
    again, _ = hashed_ngrams("The cat sat on the mat. The cat!")
    assert (index == again).all() and index.max() < NGRAM_BUCKETS
    assert weight.max() > 1.0  # "the cat" twice: sublinear tf above 1
    assert len(hashed_ngrams("")[0]) == 0


def test_split_is_fixed_and_near_twenty_percent():
    ids = [f"p-{i}" for i in range(5000)]
    share = np.mean([is_test_prompt(p) for p in ids])
    assert 0.18 < share < 0.22
    assert is_test_prompt("alpaca_eval-000") == is_test_prompt("alpaca_eval-000")
    assert 0.0 <= calibration_rank("x") < 1.0


def test_cue_anchors_never_change_a_cue():
    """cue_flags skips a regex when none of its anchors is present; on texts built to sit near every pattern
    (mixed case, the non-ASCII letters IGNORECASE folds to ASCII, glued and split words, Unicode digits) it must
    agree with running every regex."""
    import random
    import re

    from predictor.features import _CUE_SPECS, CUES, cue_flags

    words = sorted({w for _, _, anchors in _CUE_SPECS.values() for a in anchors or () for w in a.split()} |
                   {"how do", "What is", "imagine that", "you are a", "role-play", "step by step", "in 12 words",
                    "just say", "only answer", "ten reasons", "3 + 4", "\u0663+\u0664", "$5", "calculate", "percentage",
                    "A. yes", "\nB) no", "Answer:", "Statement 1", "c++", "```", "implementation", "analyse",
                    "summarize", "capitalise", "hello", "the", "Paris", "x", "?"})
    swaps = {"s": "\u017f", "k": "\u212a", "i": "\u0131", "I": "\u0130"}
    rng = random.Random(0)
    for _ in range(20000):
        parts = []
        for word in rng.sample(words, rng.randint(1, 6)):
            word = rng.choice([word, word.upper(), word.title(), word.lower()])
            if rng.random() < 0.3:
                word = "".join(swaps.get(c, c) if rng.random() < 0.5 else c for c in word)
            parts.append(word)
        text = "".join(p + rng.choice([" ", " ", "\n", ", ", "", "-", ". "]) for p in parts).strip(rng.choice([" ", ""]))
        expected = [1.0 if pattern.search(text) else 0.0 for pattern in CUES.values()]
        assert cue_flags(text) == expected, text
    assert cue_flags("Make a \u212aotlin liſt") == [1.0 if p.search("Make a \u212aotlin liſt") else 0.0
                                                    for p in CUES.values()]
    assert re.compile("list", re.I).search("li\u017ft")  # the folding the anchors must follow


def test_prompt_kinds():
    """Each kind from its cues, the first rule winning; the same from the request as from its dense features."""
    cases = {
        "Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer:": "multiple_choice",
        "Write a python function that sorts a list.": "code",
        "Calculate 17 * 23.": "math",
        "In one word, what colour is the sky?": "short_answer",
        "Write an essay about the sea.": "long_form",
        "Tell me about cats.": "open",
        "": "open",
    }
    for text, kind in cases.items():
        request = PredictionInput(text, 1, None)
        assert prompt_kind(request) == prompt_kind_of(dense_features(request)) == kind, text
