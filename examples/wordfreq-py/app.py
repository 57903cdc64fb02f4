"""A WASI preview 2 component in Python: the ten most frequent words of stdin.

A word is a run of ASCII letters, folded to lowercase; words are ordered by
count (most first), then bytewise, and printed as `<count> <word>`, the same
contract as `examples/wordfreq-p2`, byte for byte.

`scripts/build-python` builds it with componentize-py into
`target/guests/wordfreq-py.wasm`; then
`echo "b a B" | grid-cli run --memory 1GiB target/guests/wordfreq-py.wasm`
"""

import re
import sys
from collections import Counter

from wit_world import exports

WORD = re.compile(rb"[A-Za-z]+")


def wordfreq(data: bytes) -> bytes:
    counts = Counter(word.lower() for word in WORD.findall(data))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return b"".join(b"%d %s\n" % (count, word) for word, count in ranked[:10])


class Run(exports.Run):
    def run(self) -> None:
        sys.stdout.buffer.write(wordfreq(sys.stdin.buffer.read()))
        sys.stdout.buffer.flush()
