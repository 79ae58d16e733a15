"""Benchmark decontamination (DESIGN §7). Importing the package registers its stages:
`decontam.ngram`, `decontam.minhash`, `decontam.embed`, `decontam.exact`."""

from decontam import embed, exact, minhash, ngram  # noqa: F401
