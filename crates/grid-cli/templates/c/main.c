/* A grid guest: counts the words on stdin, greeting whoever the first
 * argument names. Plain C over WASI preview 1, through wasi-libc. */
#include <ctype.h>
#include <stdio.h>

int main(int argc, char **argv) {
    const char *who = argc > 1 ? argv[1] : "grid";
    size_t bytes = 0, words = 0;
    int in_word = 0;
    for (int c; (c = getchar()) != EOF; bytes++) {
        if (isspace(c)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    if (bytes == 0) {
        fputs("error: nothing on stdin: try `echo some words | grid-cli run ...`\n", stderr);
        return 1;
    }
    printf("hello, %s: %zu words\n", who, words);
    return 0;
}
