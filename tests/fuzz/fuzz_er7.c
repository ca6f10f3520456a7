/* fuzz_er7.c -- libFuzzer target for ER7 bytes: the message parser, the
 * batch parser and the ACK builder, on any input.
 *
 * Beyond "no crash, no leak", it checks two properties and aborts when one
 * fails: a parsed message re-encoded by the writer parses back to the same
 * values (line breaks normalised to "\n"), and the ACK built for any input
 * (parsed or not) is itself a message that parses, naming the right MSH-10.
 */
#include "hl7v2/hl7v2.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* True when b is a with CRLF and CR turned into LF (as the writer does). */
static int same_text(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    while (*a) {
        char c = *a++;

        if (c == '\r') {
            if (*a == '\n')
                a++;
            c = '\n';
        }
        if (*b++ != c)
            return 0;
    }
    return *b == '\0';
}

/* Writes every value of seg (fields from first on) at the same place; the
 * copy is UTF-8 whatever MSH-18 said, so MSH-18 says so. */
static void copy_segment(struct hl7_writer *w, const struct hl7_seg *seg, int first)
{
    int f, n = hl7_seg_count_fields(seg);
    int is_msh = strcmp(hl7_seg_name(seg), "MSH") == 0;

    for (f = first; f <= n || (is_msh && f <= 18); f++)
        if (is_msh && f == 18)
            hl7_writer_field(w, 18, "UNICODE UTF-8");
        else
            hl7_writer_copy_field(w, f, seg, f);
}

static void compare_segments(const struct hl7_seg *a, const struct hl7_seg *b, int first)
{
    int f, r, c, s, n = hl7_seg_count_fields(a);

    if (strcmp(hl7_seg_name(a), hl7_seg_name(b)) != 0)
        abort();
    for (f = first; f <= n; f++) {
        if (f == 18 && strcmp(hl7_seg_name(a), "MSH") == 0)
            continue;
        for (r = 0; r < hl7_seg_count_reps(a, f); r++)
            for (c = 1; c <= hl7_seg_count_components(a, f, r); c++)
                for (s = 1; s <= hl7_seg_count_subs(a, f, r, c); s++)
                    if (!same_text(hl7_seg_get(a, f, r, c, s), hl7_seg_get(b, f, r, c, s)))
                        abort();
    }
}

static void check_round_trip(const struct hl7_msg *msg)
{
    struct hl7_writer w;
    struct hl7_msg *again = NULL;
    char *out = NULL;
    size_t i, len, n = hl7_msg_count_segments(msg);
    enum gw_code rc;

    hl7_writer_init(&w, HL7_MAX_MESSAGE);
    for (i = 0; i < n; i++) {
        const struct hl7_seg *seg = hl7_msg_segment(msg, i);

        hl7_writer_segment(&w, hl7_seg_name(seg));
        copy_segment(&w, seg, i == 0 ? 3 : 1);
    }
    rc = hl7_writer_finish(&w, &out, &len, NULL);
    hl7_writer_cleanup(&w);
    if (rc == GW_E_LIMIT)
        return;
    if (rc || hl7_msg_parse(out, len, &again, NULL, NULL) != GW_OK)
        abort();
    if (hl7_msg_count_segments(again) != n)
        abort();
    for (i = 0; i < n; i++)
        compare_segments(hl7_msg_segment(msg, i), hl7_msg_segment(again, i), i == 0 ? 3 : 1);
    hl7_msg_destroy(again);
    free(out);
}

/* Builds the ACK for one input and checks that it parses. */
static void check_ack(const struct hl7_msg *msg, const char *raw, size_t len,
                      const struct hl7_err *where, const char *why)
{
    struct hl7_ack_spec spec = {.msg = msg,
                                .raw = raw,
                                .raw_len = len,
                                .code = msg ? "AA" : "AE",
                                .control_id = "FUZZ-ACK",
                                .where = where,
                                .text = why};
    struct hl7_msg *ack = NULL;
    struct hl7_ack read;
    char *out;
    size_t out_len;
    enum gw_code rc;

    if (hl7_ack_build(&spec, &out, &out_len, NULL) != GW_OK)
        abort();
    if (hl7_msg_parse(out, out_len, &ack, NULL, NULL) != GW_OK)
        abort();
    rc = hl7_ack_read(ack, &read, NULL);
    if (msg && strlen(hl7_msg_control_id(msg)) <= 999 &&
        (rc != GW_OK || !same_text(hl7_msg_control_id(msg), read.control_id)))
        abort();
    hl7_msg_destroy(ack);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct hl7_msg *msg = NULL;
    struct hl7_batch *batch = NULL;
    struct hl7_err where;
    struct gw_error err;
    struct hl7_ack ack;
    size_t i;

    if (hl7_msg_parse(text, size, &msg, &where, &err) == GW_OK) {
        check_round_trip(msg);
        check_ack(msg, text, size, NULL, NULL);
        hl7_ack_read(msg, &ack, NULL);
    } else if (err.code != GW_E_NOMEM) {
        check_ack(NULL, text, size, &where, err.msg);
    }
    hl7_msg_destroy(msg);
    if (hl7_batch_parse(text, size, &batch, &where, &err) == GW_OK) {
        for (i = 0; i < hl7_batch_count(batch); i++) {
            size_t raw_len;
            const char *raw = hl7_batch_raw(batch, i, &raw_len);

            if (!hl7_batch_msg(batch, i))
                check_ack(NULL, raw, raw_len, hl7_batch_where(batch, i),
                          hl7_batch_error(batch, i)->msg);
        }
    }
    hl7_batch_destroy(batch);
    return 0;
}
