"""Linear text heads: a few scores per prompt from hashed n-grams and the mean token embedding.

A head is a ridge regression on [tf-idf of hashed word n-grams, standardised mean input embedding of the
prompt's tokens]. Because the embedding part is linear, its weights fold into one number per vocabulary
token (`token_table`): the head's embedding term is the mean of those numbers over the prompt's tokens.
Serving a head is then a sparse dot product plus a table lookup; no embedding matrix is kept.

The embeddings are the input embeddings of the bundled SmolLM2-135M-Instruct (Apache-2.0) and the
tokenizer is its tokenizer; both are read at training time from the converted model directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from predictor.features import NGRAM_BUCKETS, hashed_ngrams


@dataclass
class TextHeads:
    names: tuple[str, ...]
    idf: np.ndarray  # (NGRAM_BUCKETS,) float32
    ngram_weights: np.ndarray  # (heads, NGRAM_BUCKETS) float32
    token_table: np.ndarray  # (heads, vocab) float32
    bias: np.ndarray  # (heads,) float32
    tokenizer: object  # tokenizers.Tokenizer

    def token_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def score(self, text: str, token_ids: list[int] | None = None) -> np.ndarray:
        """(heads,) scores of one prompt (pass its token ids if you have them)."""
        index, weight = hashed_ngrams(text)
        out = self.bias.copy()
        if len(index):
            tfidf = weight * self.idf[index]
            norm = float(np.sqrt(np.dot(tfidf, tfidf)))
            if norm > 0:
                out += self.ngram_weights[:, index] @ (tfidf / norm)
        ids = self.token_ids(text) if token_ids is None else token_ids
        if ids:
            out += self.token_table[:, ids].mean(axis=1)
        return out

    def score_many(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.score(t) for t in texts]) if texts else np.zeros((0, len(self.names)), np.float32)

    def save(self, directory: Path) -> None:
        np.savez_compressed(directory / "text_heads.npz", names=np.array(self.names), idf=self.idf.astype(np.float16),
                            ngram_weights=self.ngram_weights.astype(np.float16),
                            token_table=self.token_table.astype(np.float32), bias=self.bias)
        self.tokenizer.save(str(directory / "tokenizer.json"))

    @classmethod
    def load(cls, directory: Path) -> "TextHeads":
        from tokenizers import Tokenizer

        data = np.load(directory / "text_heads.npz")
        return cls(names=tuple(str(n) for n in data["names"]), idf=data["idf"].astype(np.float32),
                   ngram_weights=data["ngram_weights"].astype(np.float32),
                   token_table=data["token_table"].astype(np.float32), bias=data["bias"].astype(np.float32),
                   tokenizer=Tokenizer.from_file(str(directory / "tokenizer.json")))


def _tfidf_matrix(texts: Sequence[str], idf: np.ndarray):
    from scipy.sparse import csr_matrix

    rows, cols, vals = [], [], []
    for r, text in enumerate(texts):
        index, weight = hashed_ngrams(text)
        tfidf = weight * idf[index]
        norm = np.sqrt(np.dot(tfidf, tfidf))
        if norm > 0:
            rows.extend([r] * len(index))
            cols.extend(index.tolist())
            vals.extend((tfidf / norm).tolist())
    return csr_matrix((vals, (rows, cols)), shape=(len(texts), NGRAM_BUCKETS), dtype=np.float32)


def fit_text_heads(texts: Sequence[str], targets: dict[str, tuple[np.ndarray, np.ndarray]], tokenizer,
                   embeddings: np.ndarray, alpha: float = 1.0, embedding_scale: float = 0.03) -> TextHeads:
    """Fit one ridge head per target. targets[name] = (row indices into texts, values).

    `embedding_scale` weighs the standardised embedding block against the unit-norm tf-idf block (the
    embedding has hundreds of unit-variance dimensions; a small scale is a stronger ridge penalty on it).
    """
    from scipy.sparse import hstack, csr_matrix
    from sklearn.linear_model import Ridge

    document_freq = np.zeros(NGRAM_BUCKETS, dtype=np.float64)
    for text in texts:
        index, _ = hashed_ngrams(text)
        document_freq[index] += 1
    idf = (np.log((1 + len(texts)) / (1 + document_freq)) + 1).astype(np.float32)
    idf[document_freq < 2] = 0.0  # seen once: no evidence, only noise
    tfidf = _tfidf_matrix(texts, idf)
    token_ids = [tokenizer.encode(t, add_special_tokens=False).ids for t in texts]
    mean_emb = np.stack([embeddings[ids].mean(axis=0) if ids else np.zeros(embeddings.shape[1]) for ids in token_ids])
    mu, sd = mean_emb.mean(axis=0), mean_emb.std(axis=0) + 1e-6
    z = (mean_emb - mu) / sd * embedding_scale
    features = hstack([tfidf, csr_matrix(z.astype(np.float32))]).tocsr()
    names = tuple(targets)
    ngram_weights = np.zeros((len(names), NGRAM_BUCKETS), dtype=np.float32)
    token_table = np.zeros((len(names), embeddings.shape[0]), dtype=np.float32)
    bias = np.zeros(len(names), dtype=np.float32)
    for h, name in enumerate(names):
        rows, values = targets[name]
        model = Ridge(alpha=alpha).fit(features[rows], values)
        coef = model.coef_.astype(np.float64)
        ngram_weights[h] = coef[:NGRAM_BUCKETS]
        w_emb = coef[NGRAM_BUCKETS:] * embedding_scale / sd  # fold the standardisation into the weights
        token_table[h] = (embeddings @ w_emb).astype(np.float32)
        bias[h] = float(model.intercept_ - mu @ w_emb)
    return TextHeads(names=names, idf=idf, ngram_weights=ngram_weights, token_table=token_table, bias=bias,
                     tokenizer=tokenizer)
