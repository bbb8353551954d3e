"""Request features that cost microseconds: prompt statistics, task cues, hashed word n-grams.

Everything here is a pure function of the request's text and shape. The dense part (`dense_features`)
feeds the LightGBM models directly; the hashed n-grams (`hashed_ngrams`) feed the linear text heads
(predictor/text_heads.py), which turn them into a few scores.
"""

from __future__ import annotations

import math
import re
import zlib

import numpy as np

from predictor.base import PredictionInput

NGRAM_BUCKETS = 1 << 18
_WORD = re.compile(r"[a-z0-9']+")

# Task cues: what kind of answer the prompt asks for: (pattern, flags, anchors). Case-insensitive unless noted.
# A cue's anchors are substrings at least one of which every match of its pattern contains (lower-cased, after
# _FOLD, for a case-insensitive cue; None: no such list). A prompt holding none of them skips that regex, as
# most prompts do for most cues, which makes the cues almost three times cheaper without changing one result.
_CUE_SPECS: dict[str, tuple[str, int, tuple[str, ...] | None]] = {
    "list": (r"\b(list|ideas|tips|steps|examples|ways|suggest\w*|recommend\w*|options|brainstorm)\b", re.I,
             ("list", "ideas", "tips", "steps", "examples", "ways", "suggest", "recommend", "options", "brainstorm")),
    "long_form": (r"\b(essay|story|stories|novel|article|blog|letter|poem|script|speech|song|lyrics|report|email|"
                  r"post|review|cover letter|outline|plan|guide|tutorial|itinerary|proposal|syllabus|lesson|"
                  r"curriculum|bibliography|eulogy|patent|chapter|study notes|key points)\b", re.I,
                  ("essay", "story", "stories", "novel", "article", "blog", "letter", "poem", "script", "speech",
                   "song", "lyrics", "report", "email", "post", "review", "outline", "plan", "guide", "tutorial",
                   "itinerary", "proposal", "syllabus", "lesson", "curriculum", "bibliography", "eulogy", "patent",
                   "chapter", "study notes", "key points")),
    "explain": (r"\b(explain|describe|why|discuss|compare|difference|elaborate|analy[sz]e|how (do|does|can|"
                r"to|would|should|is|are|did))\b", re.I,
                ("explain", "describe", "why", "discuss", "compare", "difference", "elaborate", "analy", "how ")),
    "code": (r"(```|\bcode\b|\bfunction\b|\bpython\b|\bjavascript\b|\bsql\b|\bprogram\b|\bregex\b|\bc\+\+|"
             r"\bjava\b|\bhtml\b|\bbash\b|\bimplement\w*|\bsolution\b|\bbot\b|\bapi\b|\bscript\b)", re.I,
             ("```", "code", "function", "python", "java", "sql", "program", "regex", "c++", "html", "bash",
              "implement", "solution", "bot", "api", "script")),
    "short": (r"\b(one word|one sentence|single word|briefly|brief|short|concise|yes or no|true or false|"
              r"only (the|answer|respond)|just (the|answer|say)|in \d+ words|few words)\b", re.I,
              ("one word", "one sentence", "single word", "brief", "short", "concise", "yes or no", "true or false",
               "only ", "just ", " words")),
    "transform": (r"\b(rewrite|rephrase|paraphrase|correct|fix|edit|translate|summari[sz]e|convert|classify|"
                  r"categori[sz]e|category|sentiment|extract|identify|label|detect|sort|format|capitali[sz]e|"
                  r"change the)\b", re.I,
                  ("rewrite", "rephrase", "paraphrase", "correct", "fix", "edit", "translate", "summari", "convert",
                   "classify", "categor", "sentiment", "extract", "identify", "label", "detect", "sort", "format",
                   "capitali", "change the")),
    "name_it": (r"\b(title|name for|choose an?|pick an?|invent a|compliment|caption|slogan|headline|hashtag)\b",
                re.I, ("title", "name for", "choose a", "pick a", "invent a", "compliment", "caption", "slogan",
                       "headline", "hashtag")),
    "factoid": (r"^\s*(what|who|when|where|which) (is|was|are|were|did)\b|\b(capital of|current date|"
                r"how old|what year)\b", re.I,
                ("what ", "who ", "when ", "where ", "which ", "capital of", "current date", "how old")),
    "math": (r"(\d+\s*[-+*/x×^]\s*\d+|\bcalculate\b|\bsolve\b|\bequation\b|\bhow many\b|\bhow much\b|\bpercent|"
             r"\$\d)", re.I, None),  # \d is any Unicode digit: no short list of anchors
    "multiple_choice": (r"(^|\n)\s*[A-D][.)]\s|\bAnswer:\s*$", 0,
                        ("A.", "B.", "C.", "D.", "A)", "B)", "C)", "D)", "Answer:")),
    "count_asked": (r"\b(\d+|two|three|four|five|six|seven|eight|nine|ten|twenty)\s+(\w+\s)?(ideas|tips|ways|"
                    r"examples|reasons|things|steps|questions|names|words|sentences|paragraphs|points|facts|"
                    r"items|options|jokes|titles|entries|days)\b", re.I,
                    ("ideas", "tips", "ways", "examples", "reasons", "things", "steps", "questions", "names", "words",
                     "sentences", "paragraphs", "points", "facts", "items", "options", "jokes", "titles", "entries",
                     "days")),
    "exclusion": (r"\b(NOT|EXCEPT|LEAST|FALSE)\b", 0, ("NOT", "EXCEPT", "LEAST", "FALSE")),
    "statements": (r"\bStatement 1\b", 0, ("Statement 1",)),
    "roleplay": (r"\b(pretend|act as|imagine (you|that)|you are an?|role[- ]?play)\b", re.I,
                 ("pretend", "act as", "imagine ", "you are ", "role")),
    "opinion": (r"\b(what do you think|your opinion|should i|would you|do you)\b", re.I,
                ("your opinion", "should i", "would you", "do you")),
    "detail": (r"\b(detailed|in detail|comprehensive|thorough|step[- ]by[- ]step|in depth|elaborate|"
               r"informative|full)\b", re.I,
               ("detail", "comprehensive", "thorough", "step", "in depth", "elaborate", "informative", "full")),
    "creative": (r"\b(creative|funny|humorous|joke|rhyme|fictional|imagine|haiku|limerick)\b", re.I,
                 ("creative", "funny", "humorous", "joke", "rhyme", "fictional", "imagine", "haiku", "limerick")),
}
CUES: dict[str, re.Pattern[str]] = {name: re.compile(pattern, flags)
                                    for name, (pattern, flags, _) in _CUE_SPECS.items()}
# (pattern, anchors, whether the anchors are looked for in the folded text), in CUES order
_ANCHORED_CUES = [(CUES[name], anchors, bool(flags & re.I)) for name, (_, flags, anchors) in _CUE_SPECS.items()]
# The non-ASCII letters that IGNORECASE matches to ASCII ones (Kelvin sign, long s, dotted and dotless i), folded
# to them before lower() so that an anchor test never misses what the regex would match.
_FOLD = str.maketrans({"\u212a": "k", "\u017f": "s", "\u0130": "i", "\u0131": "i"})


def cue_flags(window: str) -> list[float]:
    """1.0 / 0.0 per cue, in CUES order: does the cue's pattern match in the window."""
    folded = window.translate(_FOLD).lower()
    flags = []
    for pattern, anchors, ignore_case in _ANCHORED_CUES:
        haystack = folded if ignore_case else window
        if anchors is not None and not any(map(haystack.__contains__, anchors)):
            flags.append(0.0)
        else:
            flags.append(1.0 if pattern.search(window) else 0.0)
    return flags


STAT_NAMES = (
    "log2_chars", "log2_words", "lines", "question_marks", "log2_digits", "numbers", "upper_ratio",
    "sentences", "ends_with_question", "ends_with_colon", "payload_share", "mean_word_chars", "quotes",
    "messages", "has_system_prompt",
)
DENSE_NAMES = STAT_NAMES + tuple(f"cue_{name}" for name in CUES)

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_DIGIT = re.compile(r"\d")
_UPPER = re.compile(r"[A-Z]")
_SENTENCE_END = re.compile(r"[.!?](\s|$)")
# Cues are searched in the head and the tail of a long prompt (where instructions sit), not in a pasted body.
CUE_HEAD_CHARS = 2000
CUE_TAIL_CHARS = 300


def _cue_window(text: str) -> str:
    if len(text) <= CUE_HEAD_CHARS + CUE_TAIL_CHARS:
        return text
    return text[:CUE_HEAD_CHARS] + "\n" + text[-CUE_TAIL_CHARS:]


def dense_features(request: PredictionInput) -> np.ndarray:
    """Prompt statistics and task-cue flags, in DENSE_NAMES order (float32)."""
    text = request.prompt_text
    words = text.split()
    n_chars = len(text)
    stripped = text.rstrip()
    head, sep, tail = text.partition("\n")
    if not sep:
        head, sep, tail = text.partition(":")
    stats = [
        math.log2(1 + n_chars),
        math.log2(1 + len(words)),
        float(text.count("\n") + 1),
        float(text.count("?")),
        math.log2(1 + len(_DIGIT.findall(text))),
        float(len(_NUMBER.findall(text))),
        len(_UPPER.findall(text)) / max(1, n_chars),
        float(len(_SENTENCE_END.findall(text))),
        float(stripped.endswith("?")),
        float(stripped.endswith(":")),
        len(tail) / max(1, n_chars) if sep else 0.0,
        (sum(len(w) for w in words) / len(words)) if words else 0.0,
        float(text.count('"') + text.count("“")),
        float(request.num_messages),
        float(request.has_system_prompt),
    ]
    return np.asarray(stats + cue_flags(_cue_window(text)), dtype=np.float32)


def hashed_ngrams(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, sublinear term weights 1 + ln(count)) of lower-cased word unigrams and bigrams.

    Buckets are crc32 of the n-gram modulo NGRAM_BUCKETS: stable across processes and Python versions.
    """
    words = ["<s>"] + _WORD.findall(text.lower())  # "<s> word": the opening word, where the instruction is
    counts: dict[int, int] = {}
    for i, word in enumerate(words):
        for gram in (word if i else None, f"{words[i - 1]} {word}" if i else None):
            if gram is not None:
                bucket = zlib.crc32(gram.encode()) % NGRAM_BUCKETS
                counts[bucket] = counts.get(bucket, 0) + 1
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    index = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    weight = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
    return index, weight


# The kind of answer a prompt asks for, from its cue flags: the first rule whose cues are set wins. The online
# length correction (predictor/correction.py) learns a deployment's bias per kind: a model may answer multiple
# choice in a word and write essays when asked to explain, whatever the shipped models did.
PROMPT_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("multiple_choice", ("multiple_choice", "statements")),
    ("code", ("code",)),
    ("math", ("math",)),
    ("short_answer", ("short", "name_it", "factoid")),
    ("long_form", ("long_form", "list", "count_asked", "detail", "creative")),
    ("open", ()),
)
_KIND_CUES = [(kind, [list(CUES).index(cue) for cue in cues]) for kind, cues in PROMPT_KINDS]


def _kind_of_cues(flags) -> str:
    """The first kind with one of its cues set (flags in CUES order); the last kind, "open", when none is."""
    for kind, positions in _KIND_CUES:
        if any(flags[i] > 0 for i in positions):
            return kind
    return PROMPT_KINDS[-1][0]


def prompt_kind_of(dense: np.ndarray) -> str:
    """The prompt's kind (a PROMPT_KINDS name) from its dense features (`dense_features`)."""
    return _kind_of_cues(dense[len(STAT_NAMES):])


def prompt_kind(request: PredictionInput) -> str:
    """The prompt's kind from the request: its cue flags only, without the statistics."""
    return _kind_of_cues(cue_flags(_cue_window(request.prompt_text)))
