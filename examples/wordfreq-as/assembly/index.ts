// Prints the ten most frequent words of stdin, the same program as the Rust,
// C and WAT guests beside it: words are runs of ASCII letters, folded to
// lowercase; ties go to the word first in byte order. AssemblyScript with
// the WASI shim, which maps `process.stdin` and `process.stdout` to WASI.
//
//   npm ci && npm run build
//   echo "a b a" | grid-cli run ../../target/guests/wordfreq-as.wasm

class Entry {
  constructor(public word: string, public count: i32) {}
}

function readStdin(): Uint8Array {
  let buf = new ArrayBuffer(1 << 16);
  let len = 0;
  while (true) {
    if (len == buf.byteLength) {
      let bigger = new ArrayBuffer(buf.byteLength * 2);
      memory.copy(changetype<usize>(bigger), changetype<usize>(buf), len);
      buf = bigger;
    }
    let n = process.stdin.read(buf, len);
    if (n <= 0) break;
    len += n;
  }
  return Uint8Array.wrap(buf, 0, len);
}

function isLetter(c: u8): bool {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

let text = readStdin();
let counts = new Map<string, Entry>();
let i = 0;
while (i < text.length) {
  if (!isLetter(text[i])) {
    i++;
    continue;
  }
  let start = i;
  for (; i < text.length && isLetter(text[i]); i++) text[i] |= 0x20;
  let word = String.UTF8.decodeUnsafe(text.dataStart + <usize>start, <usize>(i - start));
  if (counts.has(word)) counts.get(word).count++;
  else counts.set(word, new Entry(word, 1));
}

let ranked = counts.values();
ranked.sort((a: Entry, b: Entry): i32 => {
  if (a.count != b.count) return b.count - a.count;
  return a.word < b.word ? -1 : a.word > b.word ? 1 : 0;
});
let out = "";
for (let k = 0; k < ranked.length && k < 10; k++) {
  out += ranked[k].count.toString() + " " + ranked[k].word + "\n";
}
process.stdout.write(out);
