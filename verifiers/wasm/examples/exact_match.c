/*
 * exact_match: an example rlvr WASM verifier plugin (see verifiers/README.md, section 2).
 *
 * ABI: a WASI preview-1 command. stdin holds ONE JSON object
 *   {"response": str, "ground_truth": str|object, "metadata": object, "config": object}
 * and the plugin writes ONE JSON object to stdout
 *   {"score": number, "status": "correct"|"incorrect"|"invalid"|"error", "details": object}
 * then exits 0.
 *
 * This plugin takes the LAST non-empty line of the response, trims it, and compares it with
 * the trimmed ground truth (which must be a string). config: {"ignore_case": bool} (ASCII
 * letters only; default false). An empty response (only whitespace) is `invalid`; a ground
 * truth that is not a string, or a request that is not valid JSON, is `error`.
 *
 * Build: verifiers/wasm/build-examples.sh [OUT_DIR], i.e.
 *   clang-14 --target=wasm32-wasi -O2 -o OUT/exact_match.wasm examples/exact_match.c
 *
 * The JSON reader below is small but complete for what it reads: strings with every escape
 * (\" \\ \/ \b \f \n \r \t \uXXXX, surrogate pairs combined, lone surrogates replaced by
 * U+FFFD), numbers, literals, and nested objects/arrays skipped with a depth limit.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- a growable byte buffer ---------- */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static void buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        fputs("exact_match: out of memory\n", stderr);
        exit(1);
    }
    b->data = d;
    b->cap = cap;
}

static void buf_push(Buf *b, char c) {
    buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = 0;
}

static void buf_append(Buf *b, const char *s, size_t n) {
    buf_reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void buf_puts(Buf *b, const char *s) { buf_append(b, s, strlen(s)); }

static void buf_utf8(Buf *b, uint32_t cp) {
    if (cp < 0x80) {
        buf_push(b, (char)cp);
    } else if (cp < 0x800) {
        buf_push(b, (char)(0xC0 | (cp >> 6)));
        buf_push(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        buf_push(b, (char)(0xE0 | (cp >> 12)));
        buf_push(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        buf_push(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        buf_push(b, (char)(0xF0 | (cp >> 18)));
        buf_push(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        buf_push(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        buf_push(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* ---------- a small JSON reader ---------- */

typedef struct {
    const char *s;
    size_t n, i;
} Parser;

#define MAX_DEPTH 512

static void skip_ws(Parser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->i++;
        else break;
    }
}

static int peek(Parser *p) { return p->i < p->n ? (unsigned char)p->s[p->i] : -1; }

static int expect(Parser *p, char c) {
    skip_ws(p);
    if (peek(p) != (unsigned char)c) return 0;
    p->i++;
    return 1;
}

static int hex4(Parser *p, uint32_t *out) {
    if (p->i + 4 > p->n) return 0;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Reads a string (the cursor on its opening quote) into `out` (may be NULL to skip it). */
static int parse_string(Parser *p, Buf *out) {
    skip_ws(p);
    if (peek(p) != '"') return 0;
    p->i++;
    while (p->i < p->n) {
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"') return 1;
        if (c < 0x20) return 0; /* raw control characters are not allowed in JSON strings */
        if (c != '\\') {
            if (out) buf_push(out, (char)c);
            continue;
        }
        if (p->i >= p->n) return 0;
        char e = p->s[p->i++];
        char lit = 0;
        switch (e) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (!hex4(p, &cp)) return 0;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* a high surrogate: combine with a following \uDC00-\uDFFF */
                uint32_t lo;
                if (p->i + 6 <= p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                    size_t save = p->i;
                    p->i += 2;
                    if (!hex4(p, &lo)) return 0;
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        p->i = save; /* not a pair: keep the next escape for itself */
                        cp = 0xFFFD;
                    }
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD; /* a lone low surrogate */
            }
            if (out) buf_utf8(out, cp);
            continue;
        }
        default: return 0;
        }
        if (out) buf_push(out, lit);
    }
    return 0; /* unterminated */
}

static int skip_value(Parser *p, int depth);

static int skip_number(Parser *p) {
    size_t start = p->i;
    if (peek(p) == '-') p->i++;
    if (peek(p) == '0') {
        p->i++;
    } else if (peek(p) >= '1' && peek(p) <= '9') {
        while (peek(p) >= '0' && peek(p) <= '9') p->i++;
    } else {
        return 0;
    }
    if (peek(p) == '.') {
        p->i++;
        if (!(peek(p) >= '0' && peek(p) <= '9')) return 0;
        while (peek(p) >= '0' && peek(p) <= '9') p->i++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->i++;
        if (peek(p) == '+' || peek(p) == '-') p->i++;
        if (!(peek(p) >= '0' && peek(p) <= '9')) return 0;
        while (peek(p) >= '0' && peek(p) <= '9') p->i++;
    }
    return p->i > start;
}

static int skip_literal(Parser *p, const char *lit) {
    size_t n = strlen(lit);
    if (p->i + n > p->n || memcmp(p->s + p->i, lit, n) != 0) return 0;
    p->i += n;
    return 1;
}

/* Skips `{...}` or `[...]` (the cursor on the bracket), nested values included. */
static int skip_container(Parser *p, int depth) {
    if (depth > MAX_DEPTH) return 0;
    char open = p->s[p->i++];
    char close = open == '{' ? '}' : ']';
    skip_ws(p);
    if (peek(p) == (unsigned char)close) {
        p->i++;
        return 1;
    }
    for (;;) {
        if (open == '{') {
            if (!parse_string(p, NULL) || !expect(p, ':')) return 0;
        }
        if (!skip_value(p, depth + 1)) return 0;
        skip_ws(p);
        int c = peek(p);
        p->i++;
        if (c == ',') continue;
        if (c == (unsigned char)close) return 1;
        return 0;
    }
}

static int skip_value(Parser *p, int depth) {
    skip_ws(p);
    switch (peek(p)) {
    case '"': return parse_string(p, NULL);
    case '{':
    case '[': return skip_container(p, depth);
    case 't': return skip_literal(p, "true");
    case 'f': return skip_literal(p, "false");
    case 'n': return skip_literal(p, "null");
    default: return skip_number(p);
    }
}

/* ---------- the request ---------- */

typedef struct {
    Buf response;
    int has_response;
    Buf ground_truth;
    int gt_is_string;
    char gt_type[16];
    int ignore_case;
} Request;

static int parse_config(Parser *p, Request *r) {
    skip_ws(p);
    if (peek(p) != '{') return skip_value(p, 1); /* the host always sends an object */
    p->i++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->i++;
        return 1;
    }
    for (;;) {
        Buf key = {0};
        if (!parse_string(p, &key) || !expect(p, ':')) return 0;
        skip_ws(p);
        if (key.len == 11 && memcmp(key.data, "ignore_case", 11) == 0 &&
            (peek(p) == 't' || peek(p) == 'f')) {
            r->ignore_case = peek(p) == 't';
            if (!skip_value(p, 2)) return 0;
        } else if (!skip_value(p, 2)) {
            return 0;
        }
        free(key.data);
        skip_ws(p);
        int c = peek(p);
        p->i++;
        if (c == ',') continue;
        if (c == '}') return 1;
        return 0;
    }
}

static const char *type_name(int c) {
    switch (c) {
    case '{': return "object";
    case '[': return "array";
    case 't':
    case 'f': return "boolean";
    case 'n': return "null";
    default: return "number";
    }
}

static int parse_request(Parser *p, Request *r) {
    skip_ws(p);
    if (peek(p) != '{') return 0;
    p->i++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->i++;
        return 1;
    }
    for (;;) {
        Buf key = {0};
        if (!parse_string(p, &key) || !expect(p, ':')) return 0;
        skip_ws(p);
        const char *k = key.data ? key.data : "";
        int ok;
        if (strcmp(k, "response") == 0 && peek(p) == '"') {
            r->response.len = 0;
            ok = parse_string(p, &r->response);
            r->has_response = 1;
        } else if (strcmp(k, "ground_truth") == 0) {
            r->ground_truth.len = 0;
            r->gt_is_string = peek(p) == '"';
            strcpy(r->gt_type, r->gt_is_string ? "string" : type_name(peek(p)));
            ok = r->gt_is_string ? parse_string(p, &r->ground_truth) : skip_value(p, 1);
        } else if (strcmp(k, "config") == 0) {
            ok = parse_config(p, r);
        } else {
            ok = skip_value(p, 1);
        }
        free(key.data);
        if (!ok) return 0;
        skip_ws(p);
        int c = peek(p);
        p->i++;
        if (c == ',') continue;
        if (c == '}') break;
        return 0;
    }
    skip_ws(p);
    return p->i == p->n; /* nothing after the object */
}

/* ---------- the verdict ---------- */

/* Appends `s` (n bytes, UTF-8) as a JSON string literal. */
static void json_string(Buf *out, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    buf_push(out, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': buf_puts(out, "\\\""); break;
        case '\\': buf_puts(out, "\\\\"); break;
        case '\n': buf_puts(out, "\\n"); break;
        case '\r': buf_puts(out, "\\r"); break;
        case '\t': buf_puts(out, "\\t"); break;
        case '\b': buf_puts(out, "\\b"); break;
        case '\f': buf_puts(out, "\\f"); break;
        default:
            if (c < 0x20 || c == 0x7F) {
                char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
                buf_puts(out, esc);
            } else {
                buf_push(out, (char)c);
            }
        }
    }
    buf_push(out, '"');
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Trims ASCII whitespace: sets *start and returns the trimmed length. */
static size_t trim(const char *s, size_t n, const char **start) {
    size_t a = 0, b = n;
    while (a < b && is_space(s[a])) a++;
    while (b > a && is_space(s[b - 1])) b--;
    *start = s + a;
    return b - a;
}

/* The last line whose trimmed content is not empty; returns its trimmed length (0 = none). */
static size_t last_line(const char *s, size_t n, const char **start) {
    size_t end = n;
    for (;;) {
        size_t begin = end;
        while (begin > 0 && s[begin - 1] != '\n') begin--;
        size_t len = trim(s + begin, end - begin, start);
        if (len > 0) return len;
        if (begin == 0) return 0;
        end = begin - 1; /* before the '\n' */
    }
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int same(const char *a, size_t na, const char *b, size_t nb, int ignore_case) {
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (ignore_case) {
            x = lower(x);
            y = lower(y);
        }
        if (x != y) return 0;
    }
    return 1;
}

static int verdict(const char *score, const char *status, Buf *details) {
    Buf out = {0};
    buf_puts(&out, "{\"score\": ");
    buf_puts(&out, score);
    buf_puts(&out, ", \"status\": \"");
    buf_puts(&out, status);
    buf_puts(&out, "\", \"details\": {");
    if (details->len) buf_append(&out, details->data, details->len);
    buf_puts(&out, "}}\n");
    fwrite(out.data, 1, out.len, stdout);
    return 0;
}

static int fail(const char *reason) {
    Buf d = {0};
    buf_puts(&d, "\"reason\": ");
    json_string(&d, reason, strlen(reason));
    return verdict("0", "error", &d);
}

int main(void) {
    Buf in = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0) buf_append(&in, chunk, got);

    Request r = {0};
    Parser p = {in.data ? in.data : "", in.len, 0};
    if (!parse_request(&p, &r)) return fail("the request is not a valid JSON object");
    if (!r.has_response) return fail("the request has no `response` string");
    if (!r.gt_is_string) {
        char why[64];
        snprintf(why, sizeof why, "ground_truth must be a string, got %s",
                 r.gt_type[0] ? r.gt_type : "nothing");
        return fail(why);
    }

    const char *answer, *expected;
    size_t na = last_line(r.response.data ? r.response.data : "", r.response.len, &answer);
    size_t ne = trim(r.ground_truth.data ? r.ground_truth.data : "", r.ground_truth.len,
                     &expected);
    Buf d = {0};
    if (na == 0) {
        buf_puts(&d, "\"reason\": \"empty response\", \"expected\": ");
        json_string(&d, expected, ne);
        return verdict("0", "invalid", &d);
    }
    int ok = same(answer, na, expected, ne, r.ignore_case);
    buf_puts(&d, "\"answer\": ");
    json_string(&d, answer, na);
    buf_puts(&d, ", \"expected\": ");
    json_string(&d, expected, ne);
    buf_puts(&d, r.ignore_case ? ", \"ignore_case\": true" : ", \"ignore_case\": false");
    return ok ? verdict("1", "correct", &d) : verdict("0", "incorrect", &d);
}
