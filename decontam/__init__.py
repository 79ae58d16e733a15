"""Benchmark decontamination (DESIGN §7). Importing the package registers its stages:
`decontam.ngram`, `decontam.minhash`, `decontam.embed`."""

from decontam import embed, minhash, ngram  # noqa: F401
