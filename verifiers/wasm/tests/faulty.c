/*
 * faulty: a deliberately misbehaving WASM verifier plugin for verifiers/wasm/tests.
 *
 * Its behaviour is chosen by `config.mode` in the request (found as the last `"mode":"…"` in
 * the compact JSON the host sends; a test fixture, not a JSON parser):
 *   trap      __builtin_trap()
 *   loop      an infinite loop (stopped by the epoch deadline or the fuel budget)
 *   garbage   prints "not json"
 *   flood     prints forever (stopped by the output cap)
 *   oom       mallocs and touches memory forever (stopped by the memory cap)
 *   exit      prints a valid verdict, then exit(3)
 *   badscore  {"score": "high", "status": "correct"}
 *   nan       {"score": nan, "status": "correct"}  (not JSON)
 *   badstatus {"score": 1, "status": "great"}
 *   sleep     sleep(100) (WASI poll_oneoff; stopped by the timeout)
 *   readfile  tries to read /etc/passwd and other paths, to write /tmp; reports any success as
 *             score 1 / correct (must never happen: plugins get no preopened directories)
 *   ok        a valid verdict {"score": 0.5, "status": "correct", "details": {"mode": "ok"}}
 *
 * Build: clang-14 --target=wasm32-wasi -O2 -o faulty.wasm tests/faulty.c
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char request[1 << 20];
static void *volatile chain;

static int try_read(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    (void)fgets(line, sizeof line, f);
    fclose(f);
    return 1;
}

int main(void) {
    size_t n = fread(request, 1, sizeof request - 1, stdin);
    request[n] = 0;
    char mode[32] = "";
    const char *key = "\"mode\":\"";
    char *at = NULL;
    for (char *p = strstr(request, key); p; p = strstr(p + 1, key)) at = p;
    if (at) {
        at += strlen(key);
        size_t k = 0;
        while (at[k] && at[k] != '"' && k < sizeof mode - 1) {
            mode[k] = at[k];
            k++;
        }
        mode[k] = 0;
    }

    if (!strcmp(mode, "trap")) {
        __builtin_trap();
    } else if (!strcmp(mode, "loop")) {
        volatile unsigned long spin = 0;
        for (;;) spin++;
    } else if (!strcmp(mode, "garbage")) {
        puts("not json");
    } else if (!strcmp(mode, "flood")) {
        for (;;) fputs("flood flood flood flood flood flood flood flood flood flood\n", stdout);
    } else if (!strcmp(mode, "oom")) {
        /* keep every block reachable (a chain from a volatile global) so that the compiler
           cannot elide the allocations */
        for (;;) {
            void **p = malloc(1 << 20);
            if (!p) abort();
            memset(p, 0x5A, 1 << 20);
            *p = (void *)chain;
            chain = p;
        }
    } else if (!strcmp(mode, "exit")) {
        puts("{\"score\": 1, \"status\": \"correct\"}");
        fflush(stdout);
        exit(3);
    } else if (!strcmp(mode, "badscore")) {
        puts("{\"score\": \"high\", \"status\": \"correct\"}");
    } else if (!strcmp(mode, "nan")) {
        printf("{\"score\": %f, \"status\": \"correct\"}\n", 0.0 / 0.0);
    } else if (!strcmp(mode, "badstatus")) {
        puts("{\"score\": 1, \"status\": \"great\"}");
    } else if (!strcmp(mode, "sleep")) {
        sleep(100);
        puts("{\"score\": 1, \"status\": \"correct\"}");
    } else if (!strcmp(mode, "readfile")) {
        static const char *paths[] = {"/etc/passwd", "etc/passwd", "../etc/passwd",
                                      "/proc/self/environ", ".", "/"};
        int read_any = 0;
        for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) read_any |= try_read(paths[i]);
        int errno_read = errno;
        FILE *w = fopen("/tmp/rlvr-wasm-plugin-escape", "w");
        int wrote = w != NULL;
        if (w) fclose(w);
        if (read_any || wrote) {
            printf("{\"score\": 1, \"status\": \"correct\", \"details\": "
                   "{\"read\": %s, \"wrote\": %s}}\n",
                   read_any ? "true" : "false", wrote ? "true" : "false");
        } else {
            printf("{\"score\": 0, \"status\": \"incorrect\", \"details\": "
                   "{\"read\": false, \"wrote\": false, \"errno\": %d}}\n",
                   errno_read);
        }
    } else if (!strcmp(mode, "ok")) {
        puts("{\"score\": 0.5, \"status\": \"correct\", \"details\": {\"mode\": \"ok\"}}");
    } else {
        fprintf(stderr, "faulty: unknown mode `%s`\n", mode);
        return 2;
    }
    return 0;
}
