/* Prints the ten most frequent words of stdin, the same program as the
 * Rust, AssemblyScript and WAT guests beside it: words are runs of ASCII
 * letters, folded to lowercase; ties go to the word first in byte order.
 * Plain C and WASI preview 1 through wasi-libc.
 *
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -s -o wordfreq-c.wasm wordfreq.c
 *   echo "a b a" | grid-cli run wordfreq-c.wasm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    const char *word;
    size_t count;
};

static int by_word(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int by_count_then_word(const void *a, const void *b) {
    const struct entry *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

static void fail(const char *why) {
    fprintf(stderr, "error: %s\n", why);
    exit(1);
}

static int is_letter(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

int main(void) {
    /* All of stdin, then one NUL-terminated lowercase word after another. */
    size_t len = 0, cap = 1 << 16;
    char *text = malloc(cap);
    for (size_t n; text && (n = fread(text + len, 1, cap - len, stdin)) > 0;) {
        len += n;
        if (len == cap) text = realloc(text, cap *= 2);
    }
    if (!text) fail("out of memory");
    if (ferror(stdin)) fail("reading stdin failed");
    size_t nwords = 0;
    const char **words = malloc((len / 2 + 1) * sizeof *words);
    if (!words) fail("out of memory");
    for (size_t i = 0; i < len;) {
        if (!is_letter((unsigned char)text[i])) {
            i++;
            continue;
        }
        words[nwords++] = text + i;
        for (; i < len && is_letter((unsigned char)text[i]); i++) text[i] |= 0x20;
        text[i++] = '\0'; /* the separator after the word, or the spare byte at the end */
    }

    /* Sorted, equal words sit together: count each run. */
    qsort(words, nwords, sizeof *words, by_word);
    size_t ndistinct = 0;
    struct entry *entries = malloc((nwords + 1) * sizeof *entries);
    if (!entries) fail("out of memory");
    for (size_t i = 0; i < nwords; i++) {
        if (ndistinct > 0 && strcmp(entries[ndistinct - 1].word, words[i]) == 0) {
            entries[ndistinct - 1].count++;
        } else {
            entries[ndistinct++] = (struct entry){words[i], 1};
        }
    }
    qsort(entries, ndistinct, sizeof *entries, by_count_then_word);
    for (size_t i = 0; i < ndistinct && i < 10; i++) printf("%zu %s\n", entries[i].count, entries[i].word);
    return 0;
}
