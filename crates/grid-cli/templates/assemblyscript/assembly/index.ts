// A grid guest: counts the words on stdin, greeting whoever the first
// argument names. AssemblyScript with the WASI shim, which maps `process`
// (argv, stdin, stdout, stderr, exit) to WASI preview 1.

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

function isSpace(c: u8): bool {
  return c == 32 || (c >= 9 && c <= 13);
}

let who = process.argv.length > 1 ? process.argv[1] : "grid";
let text = readStdin();
if (text.length == 0) {
  process.stderr.write("error: nothing on stdin: try `echo some words | grid-cli run ...`\n");
  process.exit(1);
}
let words = 0;
for (let i = 0; i < text.length; i++) {
  if (!isSpace(text[i]) && (i == 0 || isSpace(text[i - 1]))) words++;
}
process.stdout.write("hello, " + who + ": " + words.toString() + " words\n");
