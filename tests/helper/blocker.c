/* blocker: the small static child of the mass-spawning tests (no dynamic loader, so ten
 * thousand of them start quickly and cost the kernel little).
 *   blocker CODE [TEXT]   write TEXT (if given) to stdout and "e" TEXT to stderr, read stdin
 *                         to EOF, exit with CODE */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void say(int fd, const char* prefix, const char* text) {
    char line[256];
    size_t n = strlen(prefix), t = strlen(text);
    if (n + t + 1 > sizeof line) return;
    memcpy(line, prefix, n);
    memcpy(line + n, text, t);
    line[n + t] = '\n';
    (void)!write(fd, line, n + t + 1);
}

int main(int argc, char** argv) {
    static char buf[4096];
    if (argc < 2) return 64;
    if (argc > 2) {
        say(1, "", argv[2]);
        say(2, "e", argv[2]);
    }
    while (read(0, buf, sizeof buf) > 0) {
    }
    return atoi(argv[1]);
}
