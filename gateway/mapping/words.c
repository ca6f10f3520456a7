/* words.c -- reading an indication from the GP's words: reasonCode[].text, the Conditions'
 * code.text and note[].text against the synonym table (indication-synonyms.json), with the
 * spinal level or region words giving the region, side words the laterality and duration
 * phrases ("depuis 10 semaines") the length of the pain.
 *
 * A text is cut into words: accents folded (é -> e, œ -> oe), lower case, a word ends at
 * anything but a letter or digit, and a digit followed by a letter starts a new word
 * ("10sem", "l5s1"). Sentences end at . ! ? ; and line breaks; clauses also at , : ( ).
 * A phrase matches consecutive words of one clause whose letters, spaces removed, equal the
 * phrase's ("lombo-sciatique" = "lombosciatique"), or differ by one edit (phrases of 8
 * letters or more) or two (14 or more) with the same first letter: typos and missing accents.
 * A negation cue ("pas de", "sans", "no") negates the words after it in its clause (at most
 * NEG_SCOPE, up to a scope end such as "mais"); a cue after ("exclue") the words before it.
 * A negated phrase, side or level never counts.
 *
 * Promises: texts are read up to MAP_WORDS_TEXT_MAX bytes each (n_cut says how many were
 * longer); the first entry of the table that a text says wins, texts read in the order above;
 * region, side and duration come from the sentence of the words read, else from every text
 * when they all agree.
 */
#include "mapping/mapping_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEG_SCOPE        5 /* words a negation cue reaches forward */
#define NEG_SCOPE_BACK   4 /* words a cue after the words reaches back */
#define DURATION_SPAN    4 /* words between a marker and its number */
#define SPAN_EXTRA_WORDS 2 /* words a fuzzy match may have beyond the phrase's */

struct tok {
    size_t at, len;  /* the folded word in the buffer */
    size_t from, to; /* its bytes in the source text */
    unsigned sentence, clause;
    bool negated;
};

struct text {
    const char *src;
    size_t src_len;
    char *buf; /* folded words, each NUL-terminated */
    struct tok *t;
    size_t n, cap;
};

/* ---------------------------------------------------------------- folding */

/* Base letters of U+00C0..U+00FF, '\0' where the character is not a letter. */
static const char latin1[] = "aaaaaaaceeeeiiii"
                             "dnooooo\0ouuuuyts"
                             "aaaaaaaceeeeiiii"
                             "dnooooo\0ouuuuyty";

/* Decodes one UTF-8 character at s (n bytes left): its code point, *size its bytes (1 for
 * a byte that starts no valid character, then the code point is 0xFFFD). */
static unsigned decode(const unsigned char *s, size_t n, size_t *size)
{
    unsigned c = s[0];

    *size = 1;
    if (c < 0x80)
        return c;
    if ((c & 0xE0) == 0xC0 && n >= 2 && (s[1] & 0xC0) == 0x80) {
        *size = 2;
        return ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    }
    if ((c & 0xF0) == 0xE0 && n >= 3 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        *size = 3;
        return ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    }
    return 0xFFFD;
}

/* The folded letters of code point c (0, 1 or 2 characters) into out. */
static size_t fold(unsigned c, char out[2])
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        out[0] = (char)c;
        return 1;
    }
    if (c >= 'A' && c <= 'Z') {
        out[0] = (char)(c - 'A' + 'a');
        return 1;
    }
    if (c >= 0xC0 && c <= 0xFF && latin1[c - 0xC0]) {
        out[0] = latin1[c - 0xC0];
        if (c == 0xC6 || c == 0xE6 || c == 0xDF) { /* æ, ß */
            out[1] = c == 0xDF ? 's' : 'e';
            return 2;
        }
        return 1;
    }
    if (c == 0x152 || c == 0x153) { /* œ */
        out[0] = 'o';
        out[1] = 'e';
        return 2;
    }
    return 0;
}

static bool ends_sentence(unsigned c)
{
    return c == '.' || c == '!' || c == '?' || c == ';' || c == '\n' || c == '\r';
}

static bool ends_clause(unsigned c)
{
    return c == ',' || c == ':' || c == '(' || c == ')' || c == '[' || c == ']' || c == '"' ||
           c == 0xAB || c == 0xBB; /* « » */
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---------------------------------------------------------------- cutting into words */

static void text_cleanup(struct text *x)
{
    free(x->buf);
    free(x->t);
    memset(x, 0, sizeof *x);
}

static int word_start(struct text *x, size_t at, size_t from, unsigned sentence, unsigned clause)
{
    struct tok *grown = gw_grow(x->t, &x->cap, x->n, sizeof *grown, 32);

    if (!grown)
        return -1;
    x->t = grown;
    x->t[x->n++] = (struct tok){at, 0, from, from, sentence, clause, false};
    return 0;
}

/* Cuts src (len bytes) into words. Returns 0, or -1 when out of memory. */
static int text_cut(const char *src, size_t len, struct text *x)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, o = 0, size, k, n;
    unsigned sentence = 0, clause = 0, c;
    bool in_word = false, prev_digit = false;
    char f[2];

    memset(x, 0, sizeof *x);
    x->src = src;
    x->src_len = len;
    x->buf = malloc(2 * len + 1);
    if (!x->buf)
        return -1;
    while (i < len) {
        c = decode(s + i, len - i, &size);
        n = fold(c, f);
        if (n && in_word && prev_digit && !is_digit(f[0])) { /* "10sem": two words */
            x->buf[o++] = '\0';
            in_word = false;
        }
        if (n && !in_word) {
            if (word_start(x, o, i, sentence, clause))
                return -1;
            in_word = true;
        }
        for (k = 0; k < n; k++) {
            x->buf[o++] = f[k];
            x->t[x->n - 1].len++;
        }
        if (n) {
            x->t[x->n - 1].to = i + size;
            prev_digit = is_digit(f[n - 1]);
        } else if (in_word) {
            x->buf[o++] = '\0';
            in_word = false;
        }
        /* a '.' between digits ("2.5") ends no sentence */
        if (!n && ends_sentence(c) &&
            !(c == '.' && prev_digit && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9')) {
            sentence++;
            clause++;
        } else if (!n && ends_clause(c)) {
            clause++;
        }
        i += size;
    }
    if (in_word)
        x->buf[o++] = '\0';
    x->buf[o] = '\0';
    return 0;
}

static const char *word(const struct text *x, size_t i)
{
    return x->buf + x->t[i].at;
}

long map_words_compact(const char *text, size_t len, char *out, size_t cap, size_t *n_tokens)
{
    struct text x;
    size_t i, used = 0;

    *n_tokens = 0;
    if (cap == 0)
        return -1;
    if (text_cut(text, len, &x)) {
        text_cleanup(&x);
        return -2;
    }
    for (i = 0; i < x.n; i++) {
        if (used + x.t[i].len + 1 > cap) {
            text_cleanup(&x);
            return -1;
        }
        memcpy(out + used, word(&x, i), x.t[i].len);
        used += x.t[i].len;
    }
    out[used] = '\0';
    *n_tokens = x.n;
    text_cleanup(&x);
    return (long)used;
}

/* ---------------------------------------------------------------- spans */

/* The words [i, i + k) of one clause, joined without spaces, into out (cap bytes). Returns
 * the length, or -1 when they cross a clause or do not fit. */
static long span(const struct text *x, size_t i, size_t k, char *out, size_t cap)
{
    size_t j, used = 0;

    if (i + k > x->n)
        return -1;
    for (j = i; j < i + k; j++) {
        if (x->t[j].clause != x->t[i].clause || used + x->t[j].len + 1 > cap)
            return -1;
        memcpy(out + used, word(x, j), x->t[j].len);
        used += x->t[j].len;
    }
    out[used] = '\0';
    return (long)used;
}

/* Optimal string alignment distance of a and b (Damerau: one transposition counts one), or
 * max + 1 when it exceeds max. Both are at most MAP_WORDS_MAX + SPAN slack characters. */
static size_t distance(const char *a, size_t na, const char *b, size_t nb, size_t max)
{
    size_t rows[3][MAP_WORDS_MAX + 8], i, j;
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2], *tmp;

    if (na > MAP_WORDS_MAX + 6 || nb > MAP_WORDS_MAX + 6)
        return max + 1;
    for (j = 0; j <= nb; j++)
        prev[j] = j;
    for (i = 1; i <= na; i++) {
        size_t best = cur[0] = i;

        for (j = 1; j <= nb; j++) {
            size_t cost = a[i - 1] != b[j - 1], v = prev[j - 1] + cost;

            if (prev[j] + 1 < v)
                v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1;
            cur[j] = v;
            if (v < best)
                best = v;
        }
        if (best > max)
            return max + 1;
        tmp = prev2;
        prev2 = prev;
        prev = cur;
        cur = tmp;
    }
    return prev[nb];
}

static size_t allowed_edits(const struct map_phrase *p)
{
    return p->len >= 14 ? 2 : p->len >= 8 ? 1 : 0;
}

/* The number of words from i that say p (0 when they do not): exact first, then fuzzy. */
static size_t phrase_at(const struct text *x, size_t i, const struct map_phrase *p, bool fuzzy)
{
    char buf[MAP_WORDS_MAX + 16];
    size_t k, edits = fuzzy ? allowed_edits(p) : 0, best_k = 0, best = edits + 1;
    long n;

    if (word(x, i)[0] != p->compact[0])
        return 0;
    for (k = 1; k <= p->n_tokens + (edits ? SPAN_EXTRA_WORDS : 0); k++) {
        n = span(x, i, k, buf, sizeof buf);
        if (n < 0 || (size_t)n > p->len + edits)
            break;
        if ((size_t)n + edits < p->len)
            continue;
        if ((size_t)n == p->len && memcmp(buf, p->compact, p->len) == 0)
            return k;
        if (edits && k >= p->n_tokens) { /* a typo, not a missing word */
            size_t d = distance(buf, (size_t)n, p->compact, p->len, edits);

            if (d < best) {
                best = d;
                best_k = k;
            }
        }
    }
    return best_k;
}

/* The longest item of l said at i (exactly, or also with a typo when fuzzy): its word
 * count, 0 when none. */
static size_t list_at(const struct text *x, size_t i, const struct map_wordlist *l, bool fuzzy)
{
    size_t j, k, best = 0;

    for (j = 0; j < l->n; j++) {
        k = phrase_at(x, i, &l->items[j], fuzzy);
        if (k > best)
            best = k;
    }
    return best;
}

/* ---------------------------------------------------------------- negation */

static void mark_negations(struct text *x, const struct map_synonyms *syn)
{
    size_t i, j, k;

    for (i = 0; i < x->n; i++) {
        if ((k = list_at(x, i, &syn->neg_before, false)) > 0) {
            for (j = i + k; j < x->n && j < i + k + NEG_SCOPE && x->t[j].clause == x->t[i].clause;
                 j++) {
                if (list_at(x, j, &syn->neg_end, false))
                    break;
                x->t[j].negated = true;
            }
        }
        if ((k = list_at(x, i, &syn->neg_after, false)) > 0) {
            for (j = i; j-- > 0 && j + NEG_SCOPE_BACK >= i && x->t[j].clause == x->t[i].clause;)
                x->t[j].negated = true;
        }
    }
}

/* ---------------------------------------------------------------- levels, sides, durations */

/* The region of a spinal level word ("l5", "c6", "d12"), NONE when it is none. */
static enum map_region level_of(const struct text *x, size_t i, const struct map_synonyms *syn)
{
    const char *w = word(x, i);
    size_t j;
    long v;

    if (x->t[i].len < 2 || x->t[i].len > 3 ||
        (i > 0 && list_at(x, i - 1, &syn->not_level_after, false)))
        return MAP_REGION_NONE;
    for (j = 0; j < syn->n_levels; j++)
        if (w[0] == syn->levels[j].letter && gw_parse_long(w + 1, 1, syn->levels[j].max, &v))
            return syn->levels[j].region;
    return MAP_REGION_NONE;
}

static long amount_of(const char *w, const struct map_amount *a, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(w, a[i].word) == 0)
            return a[i].value;
    return -1;
}

/* A duration starting at marker word i ("depuis [plus de] 10 semaines"): its days, or -1;
 * *last gets its last word. */
static long duration_at(const struct text *x, size_t i, const struct map_synonyms *syn,
                        size_t *last)
{
    size_t k = list_at(x, i, &syn->markers, false), j;
    long n, unit;

    if (!k)
        return -1;
    for (j = i + k; j + 1 < x->n && j < i + k + DURATION_SPAN; j++) {
        if (x->t[j].sentence != x->t[i].sentence)
            return -1;
        if (!gw_parse_long(word(x, j), 1, 999, &n) &&
            (n = amount_of(word(x, j), syn->numbers, syn->n_numbers)) < 0)
            continue;
        unit = amount_of(word(x, j + 1), syn->units, syn->n_units);
        if (unit < 0 || x->t[j + 1].sentence != x->t[i].sentence)
            return -1;
        *last = j + 1;
        return n * unit > MAP_WORDS_MAX_DAYS ? MAP_WORDS_MAX_DAYS : n * unit;
    }
    return -1;
}

/* ---------------------------------------------------------------- what one text says */

/* What a sentence, or all texts, say of region and side. Pointers are into the source
 * texts, which outlive the reading. */
struct seen {
    unsigned level_bits, word_bits, side_bits; /* bit per enum map_region / map_laterality */
    enum map_region first_level, first_word;
    const char *level_src, *word_src, *side_src;
    size_t level_from, level_to, word_from, word_to, side_from, side_to;
};

struct reading {
    const struct map_synonyms *syn;
    bool want;
    enum map_region region; /* known before the words (bodySite) */
    struct map_words *out;
    bool found;
    struct seen local, global;
    long local_days, global_days;
    const char *ld_src, *gd_src;
    size_t ld_from, ld_to, gd_from, gd_to;
};

static void remember(const struct text *x, size_t i, size_t k, const char **src, size_t *from,
                     size_t *to)
{
    *src = x->src;
    *from = x->t[i].from;
    *to = x->t[i + k - 1].to;
}

/* A level right after another one of its clause is the lower end of a disc ("L5-S1"): the
 * disc is the upper level's region, so only the first counts. */
static void note_level(struct seen *s, const struct text *x, size_t i, enum map_region r,
                       const struct map_synonyms *syn)
{
    if (i > 0 && x->t[i - 1].clause == x->t[i].clause && level_of(x, i - 1, syn))
        return;
    if (!s->level_bits) {
        s->first_level = r;
        remember(x, i, 1, &s->level_src, &s->level_from, &s->level_to);
        if (i + 1 < x->n && x->t[i + 1].clause == x->t[i].clause && level_of(x, i + 1, syn))
            s->level_to = x->t[i + 1].to; /* quote the whole disc level */
    }
    s->level_bits |= 1u << r;
}

static void note_word(struct seen *s, const struct text *x, size_t i, size_t k, enum map_region r)
{
    if (!s->word_bits) {
        s->first_word = r;
        remember(x, i, k, &s->word_src, &s->word_from, &s->word_to);
    }
    s->word_bits |= 1u << r;
}

static void note_side(struct seen *s, const struct text *x, size_t i, size_t k,
                      enum map_laterality l)
{
    if (!s->side_bits)
        remember(x, i, k, &s->side_src, &s->side_from, &s->side_to);
    s->side_bits |= 1u << l;
}

/* Records the levels, region words, sides (unless durations_only) and the first duration of x,
 * in one sentence (or everywhere when sentence is -1). Negated words give no region nor side. */
static void survey(const struct map_synonyms *syn, const struct text *x, long sentence,
                   bool durations_only, struct seen *s, long *days, const char **d_src,
                   size_t *d_from, size_t *d_to)
{
    size_t i, k, last = 0;
    enum map_region r;
    long n;
    int v;

    for (i = 0; i < x->n; i++) {
        if (sentence >= 0 && x->t[i].sentence != (unsigned)sentence)
            continue;
        if (*days < 0 && (n = duration_at(x, i, syn, &last)) >= 0) {
            *days = n;
            *d_src = x->src;
            *d_from = x->t[i].from;
            *d_to = x->t[last].to;
        }
        if (durations_only || x->t[i].negated)
            continue;
        if ((r = level_of(x, i, syn)) != MAP_REGION_NONE) {
            note_level(s, x, i, r, syn);
            continue;
        }
        for (v = 1; v <= 4; v++)
            if ((k = list_at(x, i, &syn->regions[v], true)) > 0)
                note_word(s, x, i, k, (enum map_region)v);
        for (v = 1; v <= 3; v++)
            if ((k = list_at(x, i, &syn->sides[v], false)) > 0)
                note_side(s, x, i, k, (enum map_laterality)v);
    }
}

/* The first entry of the table that x says, not negated: *at and *k its words. */
static const struct map_synonym *find_entry(const struct text *x, const struct map_synonyms *syn,
                                            size_t *at, size_t *k)
{
    size_t e, p, i, n;
    int pass;

    for (e = 0; e < syn->n_entries; e++) {
        const struct map_synonym *s = &syn->entries[e];

        for (pass = 0; pass < 2; pass++) /* exact words anywhere before a typo */
            for (p = 0; p < s->phrases.n; p++)
                for (i = 0; i < x->n; i++) {
                    if (x->t[i].negated)
                        continue;
                    n = phrase_at(x, i, &s->phrases.items[p], pass == 1);
                    if (n) {
                        *at = i;
                        *k = n;
                        return s;
                    }
                }
    }
    return NULL;
}

static char *copy_bytes(const char *src, size_t from, size_t to)
{
    return gw_strndup(src + from, to - from);
}

static enum gw_code take_match(struct reading *rd, const struct text *x, const char *expr,
                               long reason_index, const struct map_synonym *e, size_t at, size_t k)
{
    struct map_words *w = rd->out;

    rd->found = true;
    w->entry = e;
    w->reason_index = reason_index;
    if (!(w->phrase = copy_bytes(x->src, x->t[at].from, x->t[at + k - 1].to)) ||
        !(w->expr = gw_strdup(expr)))
        return GW_E_NOMEM;
    survey(rd->syn, x, (long)x->t[at].sentence, false, &rd->local, &rd->local_days, &rd->ld_src,
           &rd->ld_from, &rd->ld_to);
    return GW_OK;
}

static enum gw_code read_text(struct reading *rd, const char *text, const char *expr,
                              long reason_index)
{
    struct text x;
    size_t len = strlen(text), at = 0, k = 0;
    const struct map_synonym *e;
    enum gw_code rc = GW_OK;

    if (len > MAP_WORDS_TEXT_MAX) {
        rd->out->n_cut++;
        len = MAP_WORDS_TEXT_MAX;
    }
    if (text_cut(text, len, &x)) {
        text_cleanup(&x);
        return GW_E_NOMEM;
    }
    if (rd->want) /* a coded referral needs only its durations, which negations leave alone */
        mark_negations(&x, rd->syn);
    if (rd->want && !rd->found && (e = find_entry(&x, rd->syn, &at, &k)) != NULL)
        rc = take_match(rd, &x, expr, reason_index, e, at, k);
    if (!rc) {
        long before = rd->global_days;

        survey(rd->syn, &x, -1, !rd->want, &rd->global, &rd->global_days, &rd->gd_src, &rd->gd_from,
               &rd->gd_to);
        if (before < 0 && rd->global_days >= 0 && !(rd->out->days_expr = gw_strdup(expr)))
            rc = GW_E_NOMEM;
    }
    text_cleanup(&x);
    return rc;
}

/* ---------------------------------------------------------------- the fields */

static bool condition_void(json_t *cond)
{
    json_t *coding;
    size_t i;

    json_array_foreach (json_object_get(json_object_get(cond, "verificationStatus"), "coding"), i,
                        coding) {
        const char *c = map_json_str(coding, "code");

        if (c && (strcmp(c, "refuted") == 0 || strcmp(c, "entered-in-error") == 0))
            return true;
    }
    return false;
}

static enum gw_code read_fields(struct reading *rd, const struct map_referral *ref)
{
    json_t *v, *sr = ref->service_request;
    char expr[64];
    size_t i, n_fields = 0;
    enum gw_code rc = GW_OK;

    json_array_foreach (json_object_get(sr, "reasonCode"), i, v) {
        if (rc || !map_json_str(v, "text") || n_fields++ >= MAP_WORDS_FIELDS)
            continue;
        gw_format(expr, sizeof expr, "ServiceRequest.reasonCode[%zu].text", i);
        rc = read_text(rd, map_json_str(v, "text"), expr, (long)i);
    }
    for (i = 0; !rc && i < ref->n_conditions; i++) {
        const char *t = map_json_str(json_object_get(ref->conditions[i], "code"), "text");

        if (!t || condition_void(ref->conditions[i]) || n_fields++ >= MAP_WORDS_FIELDS)
            continue;
        gw_format(expr, sizeof expr, "Condition[%zu].code.text", i);
        rc = read_text(rd, t, expr, -1);
    }
    json_array_foreach (json_object_get(sr, "note"), i, v) {
        if (rc || !map_json_str(v, "text") || n_fields++ >= MAP_WORDS_FIELDS)
            continue;
        gw_format(expr, sizeof expr, "ServiceRequest.note[%zu].text", i);
        rc = read_text(rd, map_json_str(v, "text"), expr, -1);
    }
    return rc;
}

/* A single region or side kind in bits, or 0 when there are none or several. */
static int only(unsigned bits)
{
    int v, found = 0;

    for (v = 1; v < 8; v++) {
        if (!(bits & (1u << v)))
            continue;
        if (found)
            return 0;
        found = v;
    }
    return found;
}

static enum map_laterality side_of(unsigned sides)
{
    if (sides & (1u << MAP_LAT_BILATERAL))
        return MAP_LAT_BILATERAL;
    if ((sides & (1u << MAP_LAT_LEFT)) && (sides & (1u << MAP_LAT_RIGHT)))
        return MAP_LAT_BILATERAL; /* both named in the sentence of the indication */
    return (enum map_laterality)only(sides);
}

/* Region of the words read: the entry's, a level of its sentence, a region word of its
 * sentence, then the levels (or, without any level, the region words) of every text when
 * they agree. */
static enum gw_code settle_region(struct reading *rd)
{
    struct map_words *w = rd->out;
    const struct seen *l = &rd->local, *g = &rd->global;
    const char *src = NULL;
    size_t from = 0, to = 0;

    if (w->entry->region) {
        w->region = w->entry->region;
        return GW_OK;
    }
    if (l->level_bits) {
        w->region = l->first_level;
        src = l->level_src, from = l->level_from, to = l->level_to;
    } else if (only(l->word_bits)) {
        w->region = l->first_word;
        src = l->word_src, from = l->word_from, to = l->word_to;
    } else if (only(g->level_bits)) {
        w->region = g->first_level;
        src = g->level_src, from = g->level_from, to = g->level_to;
    } else if (!g->level_bits && only(g->word_bits)) {
        w->region = g->first_word;
        src = g->word_src, from = g->word_from, to = g->word_to;
    }
    if (src && !(w->region_words = copy_bytes(src, from, to)))
        return GW_E_NOMEM;
    return GW_OK;
}

/* Side: the entry's, the side words of its sentence (left and right there: bilateral), then
 * the side words of every text when they all say the same. */
static enum gw_code settle_side(struct reading *rd)
{
    struct map_words *w = rd->out;
    const struct seen *s = rd->local.side_bits ? &rd->local : &rd->global;

    if (w->entry->laterality) {
        w->laterality = w->entry->laterality;
        return GW_OK;
    }
    w->laterality =
        s == &rd->local ? side_of(s->side_bits) : (enum map_laterality)only(s->side_bits);
    if (w->laterality && !(w->side_words = copy_bytes(s->side_src, s->side_from, s->side_to)))
        return GW_E_NOMEM;
    return GW_OK;
}

/* The duration said with the indication, else the first of every text. */
static enum gw_code settle_days(struct reading *rd)
{
    struct map_words *w = rd->out;
    const char *src = rd->gd_src;
    size_t from = rd->gd_from, to = rd->gd_to;

    w->days = rd->global_days;
    if (rd->found && rd->local_days >= 0) {
        free(w->days_expr);
        if (!(w->days_expr = gw_strdup(w->expr)))
            return GW_E_NOMEM;
        w->days = rd->local_days;
        src = rd->ld_src, from = rd->ld_from, to = rd->ld_to;
    }
    if (w->days >= 0 && !(w->days_words = copy_bytes(src, from, to)))
        return GW_E_NOMEM;
    return GW_OK;
}

static enum gw_code settle(struct reading *rd)
{
    struct map_words *w = rd->out;
    enum map_region r;
    enum gw_code rc;

    if (rd->found) {
        if ((rc = settle_region(rd)) || (rc = settle_side(rd)))
            return rc;
        r = rd->region ? rd->region : w->region;
        w->code = w->entry->by_region[r] ? w->entry->by_region[r] : w->entry->code;
    }
    return settle_days(rd);
}

void map_words_cleanup(struct map_words *w)
{
    if (!w)
        return;
    free(w->phrase);
    free(w->expr);
    free(w->region_words);
    free(w->side_words);
    free(w->days_words);
    free(w->days_expr);
    memset(w, 0, sizeof *w);
    w->days = -1;
    w->reason_index = -1;
}

enum gw_code map_words_read(const struct map_set *set, const struct map_referral *ref,
                            bool want_indication, enum map_region region, struct map_words *out,
                            struct gw_error *err)
{
    struct reading rd;
    enum gw_code rc;

    memset(out, 0, sizeof *out);
    out->days = -1;
    out->reason_index = -1;
    if (!set->synonyms)
        return GW_OK;
    memset(&rd, 0, sizeof rd);
    rd.syn = set->synonyms;
    rd.want = want_indication;
    rd.region = region;
    rd.out = out;
    rd.local_days = rd.global_days = -1;
    rc = read_fields(&rd, ref);
    if (!rc)
        rc = settle(&rd);
    if (rc) {
        map_words_cleanup(out);
        return gw_fail(err, rc, "no memory reading the referral's words");
    }
    return GW_OK;
}
