/* test_hl7v2.c -- ER7 parsing (numbering, delimiters, escapes, character
 * sets, bounds, errors for ERR), the writer, batches, ACKs and MLLP framing,
 * on hand-written messages and the samples in tests/data/hl7v2/ (run from the
 * repository root). Longer than 800 lines: one binary per module, and the
 * module has five concerns whose cases read best side by side.
 */
#include "check.h"
#include "hl7v2/hl7v2.h"
#include "hl7v2/hl7v2_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define DATA_DIR "tests/data/hl7v2/"

/* ---------------------------------------------------------------- helpers */

static struct hl7_msg *parse_n(const char *text, size_t len)
{
    struct hl7_msg *msg = NULL;
    struct hl7_err where;
    struct gw_error err;

    if (hl7_msg_parse(text, len, &msg, &where, &err) != GW_OK)
        fprintf(stderr, "    parse failed: %s\n", err.msg);
    return msg;
}

static struct hl7_msg *parse(const char *text)
{
    return parse_n(text, strlen(text));
}

/* Parses text expecting a failure; returns the code and fills where/err. */
static enum gw_code parse_fails(const char *text, size_t len, struct hl7_err *where,
                                struct gw_error *err)
{
    struct hl7_msg *msg = NULL;
    enum gw_code rc = hl7_msg_parse(text, len, &msg, where, err);

    CHECK(msg == NULL || rc == GW_OK);
    hl7_msg_destroy(msg);
    return rc;
}

static char *read_file(const char *name, size_t *len)
{
    char path[256];
    char *data;

    snprintf(path, sizeof path, DATA_DIR "%s", name);
    data = check_read_file(path, len);
    if (!data) {
        fprintf(stderr, "    cannot read %s (run from the repository root)\n", path);
        *len = 0;
    }
    return data;
}

static struct hl7_msg *parse_file(const char *name)
{
    size_t len;
    char *data = read_file(name, &len);
    struct hl7_msg *msg = data ? parse_n(data, len) : NULL;

    free(data);
    return msg;
}

/* Builds an ACK and parses it back. */
static struct hl7_msg *ack_of(const struct hl7_ack_spec *spec)
{
    char *out;
    size_t len;
    struct gw_error err;
    struct hl7_msg *ack;

    if (hl7_ack_build(spec, &out, &len, &err) != GW_OK) {
        fprintf(stderr, "    ACK failed: %s\n", err.msg);
        return NULL;
    }
    ack = parse_n(out, len);
    free(out);
    return ack;
}

static const char *MSG_HEAD = "MSH|^~\\&|APP|FAC|RIS|SITE|20261125143633||ORM^O01^ORM_O01|CTRL1|P|"
                              "2.3.1\r";

/* A message made of MSG_HEAD and body, in a static buffer. */
static const char *with_head(const char *body)
{
    static char buf[4096];

    snprintf(buf, sizeof buf, "%s%s", MSG_HEAD, body);
    return buf;
}

/* ---------------------------------------------------------------- parsing */

static void parse_numbers_msh_fields_from_the_separator(void)
{
    struct hl7_msg *msg = parse(with_head("PID|1||X\r"));
    const struct hl7_seg *msh = hl7_msg_segment(msg, 0);

    CHECK(msg != NULL);
    CHECK_STR(hl7_msg_get(msg, "MSH", 0, 1, 0, 1, 1), "|");
    CHECK_STR(hl7_msg_get(msg, "MSH", 0, 2, 0, 1, 1), "^~\\&");
    CHECK_STR(hl7_msg_get(msg, "MSH", 0, 3, 0, 1, 1), "APP");
    CHECK_STR(hl7_msg_get(msg, "MSH", 0, 7, 0, 1, 1), "20261125143633");
    CHECK(hl7_msg_get(msg, "MSH", 0, 8, 0, 1, 1) == NULL);
    CHECK_STR(hl7_msg_type(msg), "ORM");
    CHECK_STR(hl7_msg_trigger(msg), "O01");
    CHECK_STR(hl7_msg_structure(msg), "ORM_O01");
    CHECK_STR(hl7_msg_control_id(msg), "CTRL1");
    CHECK_STR(hl7_msg_processing_id(msg), "P");
    CHECK_STR(hl7_msg_version(msg), "2.3.1");
    CHECK_STR(hl7_msg_time(msg), "20261125143633");
    CHECK_STR(hl7_msg_sending_app(msg), "APP");
    CHECK_STR(hl7_msg_sending_facility(msg), "FAC");
    CHECK_STR(hl7_msg_receiving_app(msg), "RIS");
    CHECK_STR(hl7_msg_receiving_facility(msg), "SITE");
    CHECK(hl7_msg_charset(msg) == NULL);
    CHECK_INT(hl7_seg_count_fields(msh), 12);
    CHECK_STR(hl7_seg_name(msh), "MSH");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 1, 0, 1, 1), "1");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 3, 0, 1, 1), "X");
    CHECK(hl7_msg_get(msg, "PID", 0, 2, 0, 1, 1) == NULL);
    CHECK_INT(hl7_msg_count_segments(msg), 2);
    hl7_msg_destroy(msg);
}

static void parse_reads_repetitions_components_and_subcomponents(void)
{
    struct hl7_msg *msg =
        parse(with_head("PID|1||111^^^AUTH&1.2.3&ISO^INS~222^^^GW^PI||DOE^JOHN\r"));
    const struct hl7_seg *pid = hl7_msg_find(msg, "PID", 0);

    CHECK_STR(hl7_seg_get(pid, 3, 0, 1, 1), "111");
    CHECK_STR(hl7_seg_get(pid, 3, 0, 4, 1), "AUTH");
    CHECK_STR(hl7_seg_get(pid, 3, 0, 4, 2), "1.2.3");
    CHECK_STR(hl7_seg_get(pid, 3, 0, 4, 3), "ISO");
    CHECK_STR(hl7_seg_get(pid, 3, 0, 5, 1), "INS");
    CHECK_STR(hl7_seg_get(pid, 3, 1, 1, 1), "222");
    CHECK_STR(hl7_seg_get(pid, 3, 1, 5, 1), "PI");
    CHECK(hl7_seg_get(pid, 3, 2, 1, 1) == NULL);
    CHECK(hl7_seg_get(pid, 3, 0, 2, 1) == NULL);
    CHECK(hl7_seg_get(pid, 3, 0, 4, 4) == NULL);
    CHECK_INT(hl7_seg_count_reps(pid, 3), 2);
    CHECK_INT(hl7_seg_count_components(pid, 3, 0), 5);
    CHECK_INT(hl7_seg_count_components(pid, 3, 2), 0);
    CHECK_INT(hl7_seg_count_subs(pid, 3, 0, 4), 3);
    CHECK_INT(hl7_seg_count_subs(pid, 3, 0, 1), 1);
    CHECK_INT(hl7_seg_count_subs(pid, 3, 0, 6), 0);
    CHECK_STR(hl7_seg_field(pid, 5), "DOE");
    CHECK_STR(hl7_seg_get(pid, 5, 0, 2, 1), "JOHN");
    CHECK_STR(hl7_seg_get(pid, 1, 0, 1, 1), "1");
    CHECK(hl7_seg_get(pid, 1, 0, 2, 1) == NULL);
    CHECK(hl7_seg_get(pid, 0, 0, 1, 1) == NULL);
    CHECK(hl7_seg_get(pid, 3, -1, 1, 1) == NULL);
    CHECK(hl7_seg_get(pid, 3, 0, 0, 1) == NULL);
    CHECK(hl7_seg_get(pid, 3, 0, 1, 0) == NULL);
    CHECK(hl7_seg_get(pid, 99, 0, 1, 1) == NULL);
    hl7_msg_destroy(msg);
}

static void parse_takes_custom_encoding_characters_from_msh(void)
{
    struct hl7_msg *msg = parse("MSH!#~\\&!APP!FAC!!!20261125!!ORM#O01!C1!P!2.5.1\r"
                                "PID!1!!A#B&C~D!!x^y|z!a\\S\\b\\F\\c\r");

    CHECK(msg != NULL);
    CHECK_STR(hl7_msg_get(msg, "MSH", 0, 1, 0, 1, 1), "!");
    CHECK_STR(hl7_msg_get(msg, "MSH", 0, 2, 0, 1, 1), "#~\\&");
    CHECK_STR(hl7_msg_type(msg), "ORM");
    CHECK_STR(hl7_msg_trigger(msg), "O01");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 3, 0, 1, 1), "A");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 3, 0, 2, 1), "B");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 3, 0, 2, 2), "C");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 3, 1, 1, 1), "D");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 5, 0, 1, 1), "x^y|z");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 6, 0, 1, 1), "a#b!c");
    hl7_msg_destroy(msg);
}

static void parse_accepts_lf_crlf_blank_lines_and_a_byte_order_mark(void)
{
    struct hl7_msg *lf = parse("MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\nPID|1\nNTE|1||end\n");
    struct hl7_msg *crlf =
        parse("\xEF\xBB\xBF\r\nMSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\r\nPID|1\r\n\r\nNTE|1||end");

    CHECK_INT(hl7_msg_count_segments(lf), 3);
    CHECK_INT(hl7_msg_count_segments(crlf), 3);
    CHECK_STR(hl7_msg_get(lf, "NTE", 0, 3, 0, 1, 1), "end");
    CHECK_STR(hl7_msg_get(crlf, "NTE", 0, 3, 0, 1, 1), "end");
    CHECK_STR(hl7_msg_version(crlf), "2.5");
    hl7_msg_destroy(lf);
    hl7_msg_destroy(crlf);
}

static void parse_unescapes_every_delimiter_escape(void)
{
    struct hl7_msg *msg =
        parse(with_head("OBX|1|TX|||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f|x\\.br\\y\r"));

    CHECK_STR(hl7_msg_get(msg, "OBX", 0, 5, 0, 1, 1), "a|b^c&d~e\\f");
    CHECK_INT(hl7_seg_count_components(hl7_msg_find(msg, "OBX", 0), 5, 0), 1);
    CHECK_STR(hl7_msg_get(msg, "OBX", 0, 6, 0, 1, 1), "x\ny");
    hl7_msg_destroy(msg);
}

static void parse_decodes_hex_escapes_and_rejects_bad_bytes(void)
{
    struct hl7_msg *msg = parse(with_head("OBX|1|TX|||\\X4142\\c|\\XC3A9\\t\\xc3a9\\|\\X4\\\r"));
    struct hl7_err where;
    struct gw_error err;

    CHECK_STR(hl7_msg_get(msg, "OBX", 0, 5, 0, 1, 1), "ABc");
    CHECK_STR(hl7_msg_get(msg, "OBX", 0, 6, 0, 1, 1), "\xC3\xA9t\\xc3a9\\");
    CHECK_STR(hl7_msg_get(msg, "OBX", 0, 7, 0, 1, 1), "\\X4\\"); /* malformed: kept */
    hl7_msg_destroy(msg);
    CHECK_INT(parse_fails(with_head("OBX|1|TX|||a^b\\X00\\\r"),
                          strlen(with_head("OBX|1|TX|||a^b\\X00\\\r")), &where, &err),
              GW_E_INPUT);
    CHECK_INT(where.code, HL7_ERR_DATA_TYPE);
    CHECK_STR(where.segment, "OBX");
    CHECK_INT(where.sequence, 1);
    CHECK_INT(where.field, 5);
    CHECK_INT(where.component, 2);
    CHECK(strstr(err.msg, "NUL") != NULL);
    CHECK_INT(parse_fails(with_head("OBX|1|TX|||\\XC3\\\r"),
                          strlen(with_head("OBX|1|TX|||\\XC3\\\r")), &where, &err),
              GW_E_INPUT);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
}

static void parse_drops_formatting_escapes_and_keeps_unknown_ones(void)
{
    struct hl7_msg *msg = parse(with_head(
        "NTE|1||\\H\\bold\\N\\ \\.sp2\\x \\.in+4\\y \\Zlocal\\z C:\\dir|a\\\\b|\\Qx\\y\r"));
    struct hl7_err where;
    struct gw_error err;
    const char *bad = with_head("NTE|1||\\C2842\\x\r");

    CHECK_STR(hl7_msg_get(msg, "NTE", 0, 3, 0, 1, 1), "bold \nx y z C:\\dir");
    CHECK_STR(hl7_msg_get(msg, "NTE", 0, 4, 0, 1, 1), "a\\\\b");
    CHECK_STR(hl7_msg_get(msg, "NTE", 0, 5, 0, 1, 1), "\\Qx\\y");
    hl7_msg_destroy(msg);
    CHECK_INT(parse_fails(bad, strlen(bad), &where, &err), GW_E_INPUT);
    CHECK_INT(where.field, 3);
    CHECK(strstr(err.msg, "character set") != NULL);
}

static void parse_tolerates_the_truncation_character(void)
{
    struct hl7_msg *msg = parse("MSH|^~\\&#|A|B|C|D|2026||ADT^A01|1|P|2.7\rNTE|1||abc#|x\\P\\y\r");

    CHECK(msg != NULL);
    CHECK_STR(hl7_msg_get(msg, "MSH", 0, 2, 0, 1, 1), "^~\\&#");
    CHECK_STR(hl7_msg_get(msg, "NTE", 0, 3, 0, 1, 1), "abc#");
    CHECK_STR(hl7_msg_get(msg, "NTE", 0, 4, 0, 1, 1), "x#y");
    hl7_msg_destroy(msg);
}

static void parse_converts_latin1_to_utf8(void)
{
    struct hl7_msg *msg = parse("MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5||||||8859/1\r"
                                "PID|1||||Z\xcb"
                                "E^L\xe9"
                                "a|\\XE9\\\r");
    struct hl7_msg *file = parse_file("orm_o01_latin1.hl7");

    CHECK_STR(hl7_msg_charset(msg), "8859/1");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 5, 0, 1, 1), "ZËE");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 5, 0, 2, 1), "Léa");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 6, 0, 1, 1), "é");
    CHECK_STR(hl7_msg_get(file, "PID", 0, 5, 0, 1, 1), "ZOË");
    CHECK_STR(hl7_msg_get(file, "OBR", 0, 4, 0, 2, 1), "Infiltration épidurale lombaire");
    CHECK_STR(hl7_msg_version(file), "2.3.1");
    hl7_msg_destroy(msg);
    hl7_msg_destroy(file);
}

static void parse_rejects_unsupported_charsets_and_invalid_utf8(void)
{
    const char *utf16 = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5||||||UNICODE UTF-16\rPID|1\r";
    const char *latin = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5||||||UNICODE UTF-8\r"
                        "PID|1||||Z\xeb\r";
    const char *ascii = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5||||||ASCII\rPID|1||||Z\xc3\xab\r";
    struct hl7_err where;
    struct gw_error err;

    CHECK_INT(parse_fails(utf16, strlen(utf16), &where, &err), GW_E_INPUT);
    CHECK_INT(where.code, HL7_ERR_TABLE_VALUE);
    CHECK_STR(where.segment, "MSH");
    CHECK_INT(where.field, 18);
    CHECK(strstr(err.msg, "UNICODE UTF-16") != NULL);
    CHECK_INT(parse_fails(latin, strlen(latin), &where, &err), GW_E_INPUT);
    CHECK_INT(where.code, HL7_ERR_DATA_TYPE);
    CHECK_STR(where.segment, "PID");
    CHECK_INT(where.field, 5);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    CHECK_INT(parse_fails(ascii, strlen(ascii), &where, &err), GW_E_INPUT);
    CHECK(strstr(err.msg, "ASCII") != NULL);
}

static void parse_rejects_empty_input_and_a_missing_msh(void)
{
    struct hl7_err where;
    struct gw_error err;

    CHECK_INT(parse_fails("", 0, &where, &err), GW_E_INPUT);
    CHECK_INT(where.code, HL7_ERR_SEGMENT_SEQUENCE);
    CHECK(strstr(err.msg, "empty") != NULL);
    CHECK_INT(parse_fails("\r\n\r\n", 4, &where, &err), GW_E_INPUT);
    CHECK_INT(parse_fails("PID|1\r", 6, &where, &err), GW_E_INPUT);
    CHECK_INT(where.code, HL7_ERR_SEGMENT_SEQUENCE);
    CHECK_STR(where.segment, "MSH");
    CHECK(strstr(err.msg, "MSH") != NULL);
    CHECK_INT(parse_fails("MSH", 3, &where, &err), GW_E_INPUT);
    CHECK_INT(parse_fails("FHS|^~\\&|A\r", 11, &where, &err), GW_E_INPUT);
}

static void parse_rejects_bad_encoding_characters(void)
{
    static const char *const bad[] = {
        "MSH|^~\\|A|B|C|D|2026||ADT^A01|1|P|2.5\r",    /* three characters */
        "MSH|^^\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\r",   /* repeated */
        "MSH|^~\\&x|A|B|C|D|2026||ADT^A01|1|P|2.5\r",  /* a letter */
        "MSH|^~\\&#!|A|B|C|D|2026||ADT^A01|1|P|2.5\r", /* six */
        "MSH|^ \\&|A|B|C|D|2026||ADT^A01|1|P|2.5\r",   /* a space */
        "MSH^^~\\&^A\r",                               /* separator used twice */
    };
    struct hl7_err where;
    struct gw_error err;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(parse_fails(bad[i], strlen(bad[i]), &where, &err), GW_E_INPUT);
        CHECK_INT(where.code, HL7_ERR_DATA_TYPE);
        CHECK_STR(where.segment, "MSH");
        CHECK_INT(where.field, 2);
    }
    CHECK_INT(parse_fails("MSHA^~\\&A\r", 10, &where, &err), GW_E_INPUT);
    CHECK_INT(where.field, 1);
}

static void parse_rejects_bad_segment_names(void)
{
    static const char *const bad[] = {"pid|1\r", "PI|1\r", "PIDX|1\r", "P-D|1\r", " PID|1\r"};
    struct hl7_err where;
    struct gw_error err;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *text = with_head(bad[i]);

        CHECK_INT(parse_fails(text, strlen(text), &where, &err), GW_E_INPUT);
        CHECK_INT(where.code, HL7_ERR_SEGMENT_SEQUENCE);
        CHECK(strstr(err.msg, "segment 2") != NULL);
    }
}

static void parse_rejects_nul_bytes_with_their_place(void)
{
    char text[256];
    size_t len;
    struct hl7_err where;
    struct gw_error err;

    len = (size_t)snprintf(text, sizeof text, "%sPID|1||||DOE", MSG_HEAD);
    text[len - 1] = '\0';
    CHECK_INT(parse_fails(text, len, &where, &err), GW_E_INPUT);
    CHECK_INT(where.code, HL7_ERR_DATA_TYPE);
    CHECK_STR(where.segment, "PID");
    CHECK_INT(where.field, 5);
    CHECK(strstr(err.msg, "NUL") != NULL);
}

static void parse_stops_at_segment_field_and_repetition_bounds(void)
{
    struct gw_buf b;
    struct hl7_err where;
    struct gw_error err;
    struct hl7_msg *msg;
    int i;

    gw_buf_init(&b, HL7_MAX_MESSAGE);
    gw_buf_puts(&b, MSG_HEAD);
    for (i = 1; i < HL7_MAX_SEGMENTS; i++)
        gw_buf_puts(&b, "NTE|1\r");
    msg = parse_n(b.data, b.len);
    CHECK_INT(hl7_msg_count(msg, "NTE"), HL7_MAX_SEGMENTS - 1);
    CHECK_INT(hl7_seg_sequence(hl7_msg_find(msg, "NTE", 42)), 43);
    hl7_msg_destroy(msg);
    gw_buf_puts(&b, "NTE|1\r");
    CHECK_INT(parse_fails(b.data, b.len, &where, &err), GW_E_LIMIT);
    CHECK(strstr(err.msg, "segments") != NULL);

    gw_buf_reset(&b);
    gw_buf_puts(&b, MSG_HEAD);
    gw_buf_puts(&b, "ZZZ");
    for (i = 0; i < HL7_MAX_FIELDS; i++)
        gw_buf_putc(&b, '|');
    msg = parse_n(b.data, b.len);
    CHECK_INT(hl7_seg_count_fields(hl7_msg_find(msg, "ZZZ", 0)), HL7_MAX_FIELDS);
    hl7_msg_destroy(msg);
    gw_buf_putc(&b, '|');
    CHECK_INT(parse_fails(b.data, b.len, &where, &err), GW_E_LIMIT);
    CHECK_STR(where.segment, "ZZZ");

    gw_buf_reset(&b);
    gw_buf_puts(&b, MSG_HEAD);
    gw_buf_puts(&b, "ZZZ|");
    for (i = 0; i < HL7_MAX_REPETITIONS; i++)
        gw_buf_putc(&b, '~');
    CHECK_INT(parse_fails(b.data, b.len, &where, &err), GW_E_LIMIT);
    CHECK_INT(where.field, 1);
    gw_buf_cleanup(&b);
}

static void parse_rejects_an_over_long_message(void)
{
    size_t len = (size_t)HL7_MAX_MESSAGE + 1;
    char *big = malloc(len);
    struct hl7_err where;
    struct gw_error err;

    CHECK(big != NULL);
    if (!big)
        return;
    memset(big, 'A', len);
    memcpy(big, MSG_HEAD, strlen(MSG_HEAD));
    CHECK_INT(parse_fails(big, len, &where, &err), GW_E_LIMIT);
    CHECK(strstr(err.msg, "exceeds") != NULL);
    free(big);
}

static void parse_requires_type_control_id_and_version(void)
{
    static const struct {
        const char *text;
        int field;
    } cases[] = {
        {"MSH|^~\\&|A|B|C|D|2026||^A01|1|P|2.5\r", 9},
        {"MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5\r", 10},
        {"MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P\r", 12},
    };
    struct hl7_err where;
    struct gw_error err;
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_INT(parse_fails(cases[i].text, strlen(cases[i].text), &where, &err), GW_E_INPUT);
        CHECK_INT(where.code, HL7_ERR_REQUIRED_FIELD);
        CHECK_STR(where.segment, "MSH");
        CHECK_INT(where.field, cases[i].field);
    }
}

static void parse_rejects_a_second_message_or_batch_segments(void)
{
    const char *two = with_head("PID|1\rMSH|^~\\&|A|B|C|D|2026||ADT^A01|2|P|2.5\r");
    struct hl7_err where;
    struct gw_error err;

    CHECK_INT(parse_fails(two, strlen(two), &where, &err), GW_E_INPUT);
    CHECK_INT(where.code, HL7_ERR_SEGMENT_SEQUENCE);
    CHECK_STR(where.segment, "MSH");
    CHECK(strstr(err.msg, "batch") != NULL);
    two = with_head("BTS|1\r");
    CHECK_INT(parse_fails(two, strlen(two), &where, &err), GW_E_INPUT);
    CHECK_STR(where.segment, "BTS");
}

static void absent_and_empty_values_are_null_and_explicit_nulls_are_kept(void)
{
    struct hl7_msg *msg = parse(with_head("PID|1||\"\"|~|\\H\\\rNTE|1\rNTE|2\r"));
    const struct hl7_seg *pid = hl7_msg_find(msg, "PID", 0);

    CHECK_STR(hl7_seg_field(pid, 3), "\"\"");
    CHECK(hl7_seg_field(pid, 2) == NULL);
    CHECK_INT(hl7_seg_count_reps(pid, 2), 0);
    CHECK_INT(hl7_seg_count_reps(pid, 4), 2);
    CHECK(hl7_seg_get(pid, 4, 1, 1, 1) == NULL);
    CHECK(hl7_seg_field(pid, 5) == NULL);
    CHECK(hl7_seg_field(pid, 6) == NULL);
    CHECK(hl7_msg_find(msg, "ZZZ", 0) == NULL);
    CHECK(hl7_msg_get(msg, "PID", 1, 1, 0, 1, 1) == NULL);
    CHECK_INT(hl7_msg_count(msg, "NTE"), 2);
    CHECK_STR(hl7_msg_get(msg, "NTE", 1, 1, 0, 1, 1), "2");
    CHECK(hl7_msg_segment(msg, 4) == NULL);
    CHECK(hl7_msg_get(NULL, "PID", 0, 1, 0, 1, 1) == NULL);
    hl7_msg_destroy(msg);
    hl7_msg_destroy(NULL);
}

static void segments_walk_the_order_groups_of_the_omi_sample(void)
{
    struct hl7_msg *msg = parse_file("omi_o23.hl7");
    size_t i, n = hl7_msg_count_segments(msg);
    int n_orders = 0, n_notes = 0;
    const char *procedure = NULL, *diagnosis = NULL;

    CHECK_STR(hl7_msg_type(msg), "OMI");
    CHECK_STR(hl7_msg_structure(msg), "OMI_O23");
    CHECK_STR(hl7_msg_charset(msg), "UNICODE UTF-8");
    for (i = 0; i < n; i++) {
        const struct hl7_seg *seg = hl7_msg_segment(msg, i);
        const char *name = hl7_seg_name(seg);

        CHECK_INT(hl7_seg_index(seg), i);
        if (!strcmp(name, "ORC"))
            n_orders++;
        else if (!strcmp(name, "OBR") && n_orders == 1)
            procedure = hl7_seg_get(seg, 4, 0, 1, 1);
        else if (!strcmp(name, "NTE") && n_orders == 1)
            n_notes++;
        else if (!strcmp(name, "DG1") && n_orders == 1)
            diagnosis = hl7_seg_get(seg, 3, 0, 1, 1);
    }
    CHECK_INT(n_orders, 1);
    CHECK_INT(n_notes, 2);
    CHECK_STR(procedure, "LHLH002");
    CHECK_STR(diagnosis, "M54.4");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 5, 0, 1, 1), "DÛPRÉ");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 5, 0, 2, 1), "Hélène");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 3, 0, 4, 2), "1.2.250.1.213.1.4.8");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 3, 0, 5, 1), "INS");
    CHECK_STR(hl7_msg_get(msg, "ORC", 0, 12, 0, 9, 1), "RPPS");
    CHECK_STR(hl7_msg_get(msg, "OBR", 0, 13, 0, 1, 1),
              "Lombosciatique L5 gauche & échec du traitement médical");
    CHECK_STR(hl7_msg_get(msg, "OBR", 0, 31, 0, 3, 1), "I10");
    CHECK_INT(hl7_seg_sequence(hl7_msg_find(msg, "NTE", 1)), 2);
    CHECK_STR(hl7_msg_get(msg, "IPC", 0, 3, 0, 1, 1), "1.2.250.1.999.2.20261125.42");
    hl7_msg_destroy(msg);
}

static void samples_of_siu_and_oru_read_as_the_ris_sends_them(void)
{
    struct hl7_msg *siu = parse_file("siu_s12.hl7");
    struct hl7_msg *oru = parse_file("oru_r01.hl7");
    struct hl7_msg *ok = parse_file("orm_o01_ok.hl7");

    CHECK_STR(hl7_msg_type(siu), "SIU");
    CHECK_STR(hl7_msg_trigger(siu), "S12");
    CHECK_STR(hl7_msg_get(siu, "SCH", 0, 2, 0, 1, 1), "APT-5512");
    CHECK_STR(hl7_msg_get(siu, "SCH", 0, 11, 0, 4, 1), "20261201090000+0100");
    CHECK_STR(hl7_msg_get(siu, "SCH", 0, 26, 0, 1, 1), "SR-2026-0042");
    CHECK_STR(hl7_msg_get(siu, "AIS", 0, 7, 0, 1, 1), "30");
    CHECK_STR(hl7_msg_trigger(oru), "R01");
    CHECK_INT(hl7_msg_count(oru, "OBX"), 4);
    CHECK_STR(hl7_msg_get(oru, "OBR", 0, 25, 0, 1, 1), "F");
    CHECK_STR(hl7_msg_get(oru, "OBR", 0, 32, 0, 1, 2), "LAMBERT");
    CHECK_STR(hl7_msg_get(oru, "OBX", 1, 5, 0, 1, 1),
              "Injection de 40 mg de méthylprednisolone & 2 mL de lidocaïne à 1 %.");
    CHECK_STR(hl7_msg_get(oru, "OBX", 2, 5, 0, 1, 1),
              "Pas de complication immédiate.\nConclusion : geste réalisé sans incident.");
    CHECK_STR(hl7_msg_get(oru, "OBX", 3, 5, 0, 1, 1), "Amélioration attendue sous 48 h\\72 h.");
    CHECK_STR(hl7_msg_get(ok, "ORC", 0, 1, 0, 1, 1), "OK");
    CHECK_STR(hl7_msg_get(ok, "ORC", 0, 3, 0, 1, 1), "ACC-0043");
    hl7_msg_destroy(siu);
    hl7_msg_destroy(oru);
    hl7_msg_destroy(ok);
}

/* Every prefix and many byte flips of the samples parse or fail cleanly. */
static void parse_survives_truncated_and_corrupted_samples(void)
{
    static const char *const files[] = {"omi_o23.hl7", "oru_r01.hl7", "batch_two.hl7"};
    uint32_t state = 12345;
    size_t f, len, i;
    int parsed = 0;

    for (f = 0; f < sizeof files / sizeof files[0]; f++) {
        char *data = read_file(files[f], &len);

        CHECK(data != NULL);
        for (i = 0; data && i <= len; i++) {
            struct hl7_msg *msg = NULL;
            struct hl7_batch *b = NULL;
            char saved;
            size_t at;

            hl7_msg_parse(data, i, &msg, NULL, NULL);
            parsed += msg != NULL;
            hl7_msg_destroy(msg);
            state = state * 1103515245u + 12345u;
            at = (state >> 8) % len;
            saved = data[at];
            data[at] = (char)(state >> 24);
            hl7_msg_parse(data, len, &msg, NULL, NULL);
            hl7_batch_parse(data, len, &b, NULL, NULL);
            hl7_msg_destroy(msg);
            hl7_batch_destroy(b);
            data[at] = saved;
        }
        free(data);
    }
    CHECK(parsed > 100);
}

/* ---------------------------------------------------------------- writing */

static char *finish(struct hl7_writer *w, enum gw_code want, struct gw_error *err)
{
    char *out = NULL;
    size_t len;

    CHECK_INT(hl7_writer_finish(w, &out, &len, err), want);
    hl7_writer_cleanup(w);
    return out;
}

/* hl7_escape() as it was, a switch per byte: the reference for the run loop. */
static void escape_bytewise(struct gw_buf *b, const char *text, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, start = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        const char *esc = NULL;
        char x[5] = {'\\', 'X', 0, 0, '\\'};

        switch (c) {
        case '|':
            esc = "\\F\\";
            break;
        case '^':
            esc = "\\S\\";
            break;
        case '&':
            esc = "\\T\\";
            break;
        case '~':
            esc = "\\R\\";
            break;
        case '\\':
            esc = "\\E\\";
            break;
        case '\r':
        case '\n':
            esc = "\\.br\\";
            break;
        default:
            if (c >= 0x20 && c != 0x7F)
                continue;
        }
        gw_buf_append(b, text + start, i - start);
        start = i + 1;
        if (c == '\r' && i + 1 < n && text[i + 1] == '\n')
            start = ++i + 1;
        if (esc) {
            gw_buf_puts(b, esc);
        } else {
            x[2] = hex[c >> 4];
            x[3] = hex[c & 15];
            gw_buf_append(b, x, sizeof x);
        }
    }
    gw_buf_append(b, text + start, n - start);
}

static void escape_agrees_with_the_bytewise_escape_for_every_byte_and_pair(void)
{
    struct gw_buf mine, ref;
    char text[32];
    size_t len, at, i;
    unsigned c, d;
    int differ = 0;

    gw_buf_init(&mine, 1 << 16);
    gw_buf_init(&ref, 1 << 16);
    for (len = 0; len <= 12; len++)
        for (at = 0; at < len || (len == 0 && at == 0); at++)
            for (c = 0; c < 256; c++)
                for (d = 0; d < 256; d += (len > 4 ? 17 : 1)) { /* the byte after it too */
                    for (i = 0; i < len; i++)
                        text[i] = (char)(i % 3 ? 'a' + i : 0xC3);
                    if (at < len)
                        text[at] = (char)c;
                    if (at + 1 < len)
                        text[at + 1] = (char)d;
                    gw_buf_reset(&mine);
                    gw_buf_reset(&ref);
                    hl7_escape(&mine, text, len);
                    escape_bytewise(&ref, text, len);
                    if ((mine.len != ref.len ||
                         (ref.len && memcmp(mine.data, ref.data, ref.len) != 0)) &&
                        differ++ < 3)
                        fprintf(stderr, "    len %zu, %02x %02x at %zu: %s\n", len, c, d, at,
                                mine.data);
                }
    CHECK_INT(differ, 0);
    gw_buf_reset(&mine);
    hl7_escape(&mine, "", 0);
    CHECK_INT(mine.len, 0);
    gw_buf_cleanup(&mine);
    gw_buf_cleanup(&ref);
}

static void escape_of_a_long_text_is_the_bytewise_escape(void)
{
    static const char pieces[] = "ab|c^d&e~f\\g\r\nh\ri\nj\x01k\x7fl\xc3\xa9m";
    struct gw_buf mine, ref;
    char text[5000];
    size_t i;

    for (i = 0; i < sizeof text; i++)
        text[i] = pieces[(i * 7) % (sizeof pieces - 1)];
    gw_buf_init(&mine, 1 << 16);
    gw_buf_init(&ref, 1 << 16);
    hl7_escape(&mine, text, sizeof text);
    escape_bytewise(&ref, text, sizeof text);
    CHECK(mine.len == ref.len && memcmp(mine.data, ref.data, ref.len) == 0);
    gw_buf_cleanup(&mine);
    gw_buf_cleanup(&ref);
}

static void writer_escapes_delimiters_line_breaks_and_controls(void)
{
    struct hl7_writer w;
    struct gw_error err;
    char *out;

    hl7_writer_init(&w, 1000);
    hl7_writer_segment(&w, "NTE");
    hl7_writer_field(&w, 3, "a|b^c~d\\e&f\r\ng\nh\ti\rj");
    out = finish(&w, GW_OK, &err);
    CHECK_STR(out, "NTE|||a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\.br\\g\\.br\\h\\X09\\i\\.br\\j\r");
    free(out);
}

static void writer_round_trips_accented_names_and_every_special_character(void)
{
    static const struct hl7_header h = {.sending_app = "GW",
                                        .type = "ADT",
                                        .trigger = "A01",
                                        .control_id = "C1",
                                        .time = "20261125143633"};
    const char *nasty = "a|b^c~d\\e&f\ng \\F\\ #";
    struct hl7_writer w;
    struct gw_error err;
    struct hl7_msg *msg;
    char *out;

    hl7_writer_init(&w, HL7_MAX_MESSAGE);
    hl7_writer_msh(&w, &h);
    hl7_writer_segment(&w, "PID");
    hl7_writer_field(&w, 1, "1");
    hl7_writer_put(&w, 5, 0, 1, 1, "Dûpré");
    hl7_writer_put(&w, 5, 0, 2, 1, "Hélène");
    hl7_writer_put(&w, 5, 1, 1, 1, "Zoë");
    hl7_writer_field(&w, 6, nasty);
    out = finish(&w, GW_OK, &err);
    msg = out ? parse(out) : NULL;
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 5, 0, 1, 1), "Dûpré");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 5, 0, 2, 1), "Hélène");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 5, 1, 1, 1), "Zoë");
    CHECK_STR(hl7_msg_get(msg, "PID", 0, 6, 0, 1, 1), nasty);
    CHECK_STR(hl7_msg_charset(msg), "UNICODE UTF-8");
    CHECK_STR(hl7_msg_version(msg), "2.5.1");
    hl7_msg_destroy(msg);
    free(out);
}

static void writer_places_repetitions_components_and_subcomponents(void)
{
    struct hl7_writer w;
    struct gw_error err;
    char *out;

    hl7_writer_init(&w, 1000);
    hl7_writer_segment(&w, "PID");
    hl7_writer_field_int(&w, 1, 1);
    hl7_writer_put(&w, 3, 0, 1, 1, "111");
    hl7_writer_put(&w, 3, 0, 4, 1, "AUTH");
    hl7_writer_put(&w, 3, 0, 4, 2, "1.2.3");
    hl7_writer_put(&w, 3, 0, 4, 3, "ISO");
    hl7_writer_put(&w, 3, 0, 5, 1, "INS");
    hl7_writer_put(&w, 3, 1, 1, 1, "222");
    hl7_writer_put(&w, 3, 1, 5, 1, "PI");
    hl7_writer_comp(&w, 5, 2, "JOHN");
    hl7_writer_field(&w, 7, NULL);
    hl7_writer_field(&w, 8, "");
    hl7_writer_segment(&w, "PV1");
    hl7_writer_field(&w, 2, "O");
    out = finish(&w, GW_OK, &err);
    CHECK_STR(out, "PID|1||111^^^AUTH&1.2.3&ISO^INS~222^^^^PI||^JOHN\rPV1||O\r");
    free(out);
}

static void writer_builds_msh_with_defaults(void)
{
    static const struct hl7_header h = {.sending_app = "GW",
                                        .sending_facility = "GP",
                                        .receiving_app = "RIS",
                                        .receiving_facility = "SITE",
                                        .time = "20261125143633+0100",
                                        .type = "OMI",
                                        .trigger = "O23",
                                        .structure = "OMI_O23",
                                        .control_id = "C1",
                                        .accept_ack = "AL",
                                        .app_ack = "NE"};
    struct hl7_writer w;
    struct gw_error err;
    char *out;

    hl7_writer_init(&w, 1000);
    hl7_writer_msh(&w, &h);
    out = finish(&w, GW_OK, &err);
    CHECK_STR(out, "MSH|^~\\&|GW|GP|RIS|SITE|20261125143633+0100||OMI^O23^OMI_O23|C1|P|2.5.1|||"
                   "AL|NE||UNICODE UTF-8\r");
    free(out);
}

static void writer_copies_a_parsed_field_with_all_its_parts(void)
{
    struct hl7_msg *msg = parse_file("omi_o23.hl7");
    struct hl7_writer w;
    struct gw_error err;
    char *out;

    hl7_writer_init(&w, 1000);
    hl7_writer_segment(&w, "PID");
    hl7_writer_copy_field(&w, 3, hl7_msg_find(msg, "PID", 0), 3);
    hl7_writer_copy_field(&w, 5, hl7_msg_find(msg, "PID", 0), 5);
    out = finish(&w, GW_OK, &err);
    CHECK_STR(out, "PID|||1680412345678^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS~PAT-778^^^"
                   "GATEWAY^PI||DÛPRÉ^Hélène^Marie^^Mme\r");
    free(out);
    hl7_msg_destroy(msg);
}

static void writer_refuses_positions_that_go_back(void)
{
    struct hl7_writer w;
    struct gw_error err;

    hl7_writer_init(&w, 1000);
    hl7_writer_segment(&w, "PID");
    hl7_writer_field(&w, 5, "x");
    hl7_writer_field(&w, 3, "y");
    hl7_writer_field(&w, 7, "z"); /* ignored: the error sticks */
    CHECK(finish(&w, GW_E_INTERNAL, &err) == NULL);
    CHECK(strstr(err.msg, "3.0.1.1") != NULL);

    hl7_writer_init(&w, 1000);
    hl7_writer_segment(&w, "MSH");
    hl7_writer_field(&w, 2, "^~\\&");
    CHECK(finish(&w, GW_E_INTERNAL, &err) == NULL);

    hl7_writer_init(&w, 1000);
    hl7_writer_segment(&w, "PID");
    hl7_writer_put(&w, 3, 0, 2, 1, "a");
    hl7_writer_put(&w, 3, 0, 2, 1, "b");
    CHECK(finish(&w, GW_E_INTERNAL, &err) == NULL);
}

static void writer_refuses_bad_names_bad_utf8_and_misuse(void)
{
    static const struct hl7_header no_id = {.type = "ADT"};
    struct hl7_writer w;
    struct gw_error err;

    hl7_writer_init(&w, 1000);
    hl7_writer_segment(&w, "pid");
    CHECK(finish(&w, GW_E_INTERNAL, &err) == NULL);
    hl7_writer_init(&w, 1000);
    hl7_writer_segment(&w, "PID");
    hl7_writer_field(&w, 5, "Z\xeb");
    CHECK(finish(&w, GW_E_INPUT, &err) == NULL);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    hl7_writer_init(&w, 1000);
    hl7_writer_field(&w, 1, "x");
    CHECK(finish(&w, GW_E_INTERNAL, &err) == NULL);
    hl7_writer_init(&w, 1000);
    CHECK(finish(&w, GW_E_INTERNAL, &err) == NULL);
    hl7_writer_init(&w, 1000);
    hl7_writer_msh(&w, &no_id);
    CHECK(finish(&w, GW_E_INTERNAL, &err) == NULL);
    hl7_writer_init(&w, 1000);
    hl7_writer_segment(&w, "PID");
    hl7_writer_put(&w, HL7_MAX_FIELDS + 1, 0, 1, 1, "x");
    CHECK(finish(&w, GW_E_INTERNAL, &err) == NULL);
}

static void writer_stops_at_its_cap(void)
{
    struct hl7_writer w;
    struct gw_error err;

    hl7_writer_init(&w, 40);
    hl7_writer_segment(&w, "NTE");
    hl7_writer_field(&w, 3, "a text that is longer than forty bytes in all");
    CHECK(finish(&w, GW_E_LIMIT, &err) == NULL);
    CHECK(strstr(err.msg, "40") != NULL);
}

/* ---------------------------------------------------------------- batches */

static void batch_reads_a_file_with_right_counts(void)
{
    size_t len, raw_len;
    char *data = read_file("batch_two.hl7", &len);
    struct hl7_batch *b = NULL;
    struct hl7_err where;
    struct gw_error err;
    const char *raw;

    CHECK_INT(hl7_batch_parse(data ? data : "", len, &b, &where, &err), GW_OK);
    CHECK_INT(hl7_batch_count(b), 2);
    CHECK(hl7_batch_has_headers(b));
    CHECK_STR(hl7_msg_control_id(hl7_batch_msg(b, 0)), "MSG00001");
    CHECK_STR(hl7_msg_control_id(hl7_batch_msg(b, 1)), "RIS-70001");
    CHECK_STR(hl7_seg_name(hl7_batch_header(b)), "BHS");
    CHECK_STR(hl7_seg_field(hl7_batch_header(b), 11), "BATCH-7");
    CHECK_INT(hl7_batch_error(b, 0)->code, GW_OK);
    raw = hl7_batch_raw(b, 1, &raw_len);
    CHECK(raw && raw_len > 10 && memcmp(raw, "MSH|", 4) == 0);
    CHECK(hl7_batch_msg(b, 2) == NULL);
    CHECK(hl7_batch_raw(b, 2, &raw_len) == NULL);
    hl7_batch_destroy(b);
    free(data);
}

#define B_MSG1 "MSH|^~\\&|A|B|C|D|2026||ACK^O23^ACK|1|P|2.5.1\rMSA|AA|X1\r"
#define B_MSG2 "MSH|^~\\&|A|B|C|D|2026||ACK^O23^ACK|2|P|2.5.1\rMSA|AE|X2\r"

static enum gw_code batch_of(const char *text, struct hl7_batch **b, struct hl7_err *where,
                             struct gw_error *err)
{
    return hl7_batch_parse(text, strlen(text), b, where, err);
}

static void batch_rejects_wrong_counts(void)
{
    struct hl7_batch *b = NULL;
    struct hl7_err where;
    struct gw_error err;

    CHECK_INT(batch_of("BHS|^~\\&\r" B_MSG1 B_MSG2 "BTS|3\r", &b, &where, &err), GW_E_INPUT);
    CHECK(b == NULL);
    CHECK_STR(where.segment, "BTS");
    CHECK_INT(where.field, 1);
    CHECK(strstr(err.msg, "counts 3") != NULL);
    CHECK_INT(batch_of("FHS|^~\\&\rBHS|^~\\&\r" B_MSG1 "BTS|1\rFTS|2\r", &b, &where, &err),
              GW_E_INPUT);
    CHECK_STR(where.segment, "FTS");
    CHECK_INT(batch_of("BHS|^~\\&\r" B_MSG1 "BTS|one\r", &b, &where, &err), GW_E_INPUT);
    CHECK_INT(where.code, HL7_ERR_DATA_TYPE);
    CHECK_INT(batch_of("FHS|^~\\&\rBHS|^~\\&\r" B_MSG1 B_MSG2 "BTS|2\rFTS|1\r", &b, &where, &err),
              GW_OK);
    CHECK_INT(hl7_batch_count(b), 2);
    hl7_batch_destroy(b);
    CHECK_INT(batch_of("BHS!#~\\&\r" B_MSG1 "BTS!1#x\r", &b, &where, &err), GW_OK);
    hl7_batch_destroy(b);
}

static void batch_accepts_single_bare_and_empty_batches(void)
{
    struct hl7_batch *b = NULL;
    struct hl7_err where;
    struct gw_error err;

    CHECK_INT(batch_of(B_MSG1, &b, &where, &err), GW_OK);
    CHECK_INT(hl7_batch_count(b), 1);
    CHECK(!hl7_batch_has_headers(b));
    CHECK(hl7_batch_header(b) == NULL);
    hl7_batch_destroy(b);
    CHECK_INT(batch_of(B_MSG1 "\n\n" B_MSG2, &b, &where, &err), GW_OK);
    CHECK_INT(hl7_batch_count(b), 2);
    CHECK_STR(hl7_msg_get(hl7_batch_msg(b, 1), "MSA", 0, 2, 0, 1, 1), "X2");
    hl7_batch_destroy(b);
    CHECK_INT(batch_of("FHS|^~\\&\rBHS|^~\\&\rBTS|0\rFTS|1\r", &b, &where, &err), GW_OK);
    CHECK_INT(hl7_batch_count(b), 0);
    CHECK(hl7_batch_has_headers(b));
    hl7_batch_destroy(b);
}

static void batch_keeps_a_bad_message_with_its_error_and_bytes(void)
{
    struct hl7_batch *b = NULL;
    struct hl7_err where;
    struct gw_error err;
    size_t len;

    CHECK_INT(batch_of("BHS|^~\\&\r" B_MSG1 "MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5\rPID|1\r"
                       "BTS|2\r",
                       &b, &where, &err),
              GW_OK);
    CHECK_INT(hl7_batch_count(b), 2);
    CHECK(hl7_batch_msg(b, 0) != NULL);
    CHECK(hl7_batch_msg(b, 1) == NULL);
    CHECK_INT(hl7_batch_error(b, 1)->code, GW_E_INPUT);
    CHECK_INT(hl7_batch_where(b, 1)->code, HL7_ERR_REQUIRED_FIELD);
    CHECK_INT(hl7_batch_where(b, 1)->field, 10);
    CHECK(memcmp(hl7_batch_raw(b, 1, &len), "MSH|", 4) == 0);
    CHECK_INT(len, strlen("MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5\rPID|1"));
    hl7_batch_destroy(b);
}

static void batch_rejects_broken_structure(void)
{
    static const char *const bad[] = {
        "BHS|^~\\&\r" B_MSG1,                    /* no BTS */
        "FHS|^~\\&\rBHS|^~\\&\r" B_MSG1 "BTS\r", /* no FTS */
        B_MSG1 "BTS|1\r",                        /* BTS without BHS */
        B_MSG1 "FTS|1\r",                        /* FTS without FHS */
        "PID|1\r" B_MSG1,                        /* junk before MSH */
        "",                                      /* nothing */
        "\r\n \r\n",                             /* blank */
        "BHS|^~\\&\r" B_MSG1 "BTS|1\rXYZ|1\r",   /* data after the end */
        "BHS|^~\r" B_MSG1 "BTS|1\r",             /* bad header */
    };
    struct hl7_batch *b = NULL;
    struct hl7_err where;
    struct gw_error err;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = '\0';
        CHECK_INT(batch_of(bad[i], &b, &where, &err), GW_E_INPUT);
        CHECK(b == NULL);
        CHECK(where.code != HL7_ERR_NONE);
        CHECK(err.msg[0] != '\0');
    }
}

static void batch_encode_wraps_messages_and_parses_back(void)
{
    static const struct hl7_batch_info info = {
        .sending_app = "GW", .receiving_app = "RIS", .time = "20261125160000", .control_id = "B7"};
    const struct hl7_bytes msgs[] = {{B_MSG1, strlen(B_MSG1)}, {B_MSG2, strlen(B_MSG2) - 1}};
    const struct hl7_bytes junk[] = {{"PID|1\r", 6}};
    struct hl7_batch *b = NULL;
    struct gw_error err;
    char *out;
    size_t len;

    CHECK_INT(hl7_batch_encode(&info, msgs, 2, &out, &len, &err), GW_OK);
    CHECK_STR(out, "FHS|^~\\&|GW||RIS||20261125160000||||B7\r"
                   "BHS|^~\\&|GW||RIS||20261125160000||||B7\r" B_MSG1 B_MSG2 "BTS|2\rFTS|1\r");
    CHECK_INT(hl7_batch_parse(out, len, &b, NULL, &err), GW_OK);
    CHECK_INT(hl7_batch_count(b), 2);
    CHECK_STR(hl7_msg_control_id(hl7_batch_msg(b, 1)), "2");
    hl7_batch_destroy(b);
    free(out);
    CHECK_INT(hl7_batch_encode(NULL, NULL, 0, &out, &len, &err), GW_OK);
    CHECK(out && strstr(out, "BTS|0\rFTS|1\r") != NULL);
    free(out);
    CHECK_INT(hl7_batch_encode(&info, junk, 1, &out, &len, &err), GW_E_INTERNAL);
    CHECK(out == NULL);
}

/* ---------------------------------------------------------------- ACKs */

static void ack_accepts_with_aa_and_swaps_sender_and_receiver(void)
{
    struct hl7_msg *in = parse_file("omi_o23.hl7");
    struct hl7_ack_spec spec = {
        .msg = in, .code = "AA", .control_id = "ACK-1", .time = "20261125143700+0100"};
    char *out;
    size_t len;
    struct gw_error err;

    CHECK_INT(hl7_ack_build(&spec, &out, &len, &err), GW_OK);
    CHECK_STR(out, "MSH|^~\\&|RIS|IMAGERIE-SUD|FHIR-GATEWAY|CABINET-GP|20261125143700+0100||"
                   "ACK^O23^ACK|ACK-1|P|2.5.1||||||UNICODE UTF-8\rMSA|AA|MSG00001\r");
    free(out);
    hl7_msg_destroy(in);
}

static void ack_error_carries_err_location_code_severity_and_text(void)
{
    struct hl7_msg *in = parse_file("omi_o23.hl7");
    struct hl7_err where;
    struct hl7_ack_spec spec = {.msg = in,
                                .code = "AE",
                                .control_id = "ACK-2",
                                .where = &where,
                                .text = "PID-3 sans identifiant | INS"};
    struct hl7_msg *ack;
    struct hl7_ack read;
    struct gw_error err;

    hl7_err_set(&where, HL7_ERR_REQUIRED_FIELD, "PID", 1, 3, 1);
    ack = ack_of(&spec);
    CHECK_STR(hl7_msg_type(ack), "ACK");
    CHECK_STR(hl7_msg_get(ack, "MSA", 0, 1, 0, 1, 1), "AE");
    CHECK_STR(hl7_msg_get(ack, "MSA", 0, 2, 0, 1, 1), "MSG00001");
    CHECK(hl7_msg_get(ack, "MSA", 0, 3, 0, 1, 1) == NULL);
    CHECK(hl7_msg_get(ack, "ERR", 0, 1, 0, 1, 1) == NULL);
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 2, 0, 1, 1), "PID");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 2, 0, 2, 1), "1");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 2, 0, 3, 1), "3");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 2, 0, 4, 1), "1");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 2, 0, 5, 1), "1");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 3, 0, 1, 1), "101");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 3, 0, 2, 1), "Required field missing");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 3, 0, 3, 1), "HL70357");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 4, 0, 1, 1), "E");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 8, 0, 1, 1), "PID-3 sans identifiant | INS");
    CHECK_INT(hl7_ack_read(ack, &read, &err), GW_OK);
    CHECK_STR(read.code, "AE");
    CHECK_STR(read.control_id, "MSG00001");
    CHECK_STR(read.text, "PID-3 sans identifiant | INS");
    CHECK_INT(read.error_code, 101);
    hl7_msg_destroy(ack);
    hl7_msg_destroy(in);
}

static void ack_rejects_an_unsupported_version_with_ar(void)
{
    struct hl7_msg *in = parse("MSH|^~\\&|RIS|S|GW|G|2026||ORM^O01|R-1|T|9.9\rORC|OK\r");
    struct hl7_err where;
    struct hl7_ack_spec spec = {.msg = in,
                                .code = "AR",
                                .control_id = "ACK-3",
                                .where = &where,
                                .text = "version 9.9 is not supported"};
    struct hl7_msg *ack;

    hl7_err_set(&where, HL7_ERR_UNSUPPORTED_VERSION, "MSH", 1, 12, 0);
    ack = ack_of(&spec);
    CHECK_STR(hl7_msg_get(ack, "MSA", 0, 1, 0, 1, 1), "AR");
    CHECK_STR(hl7_msg_processing_id(ack), "T");
    CHECK_STR(hl7_msg_version(ack), "9.9");
    CHECK_STR(hl7_msg_trigger(ack), "O01");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 2, 0, 3, 1), "12");
    CHECK(hl7_msg_get(ack, "ERR", 0, 2, 0, 5, 1) == NULL);
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 3, 0, 1, 1), "203");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 3, 0, 2, 1), "Unsupported version id");
    hl7_msg_destroy(ack);
    hl7_msg_destroy(in);
}

static void ack_from_bytes_that_failed_recovers_control_id_and_applications(void)
{
    const char raw[] = "junk MSH|^~\\&|RIS|SITE^1.2.3^ISO|GW|GP|2026||ORM^O01^ORM_O01|CTL-9|P|"
                       "2.3.1\rPID|1||||Z\xeb\r";
    struct hl7_err where;
    struct gw_error perr;
    struct hl7_ack_spec spec = {.raw = raw,
                                .raw_len = sizeof raw - 1,
                                .code = "AE",
                                .control_id = "ACK-4",
                                .where = &where};
    struct hl7_msg *ack;

    CHECK_INT(parse_fails(raw, sizeof raw - 1, &where, &perr), GW_E_INPUT);
    spec.text = perr.msg;
    ack = ack_of(&spec);
    CHECK_STR(hl7_msg_get(ack, "MSA", 0, 2, 0, 1, 1), "CTL-9");
    CHECK_STR(hl7_msg_sending_app(ack), "GW");
    CHECK_STR(hl7_msg_sending_facility(ack), "GP");
    CHECK_STR(hl7_msg_receiving_app(ack), "RIS");
    CHECK_STR(hl7_msg_get(ack, "MSH", 0, 6, 0, 2, 1), "1.2.3");
    CHECK_STR(hl7_msg_trigger(ack), "O01");
    CHECK_STR(hl7_msg_version(ack), "2.3.1");
    /* Before v2.5 the error also goes in ERR-1 and MSA-3. */
    CHECK_STR(hl7_msg_get(ack, "MSA", 0, 3, 0, 1, 1), perr.msg);
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 1, 0, 1, 1), "MSH");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 1, 0, 4, 1), "100");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 1, 0, 4, 3), "HL70357");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 3, 0, 1, 1), "100");
    hl7_msg_destroy(ack);
}

static void ack_from_pure_garbage_still_builds(void)
{
    struct hl7_ack_spec spec = {.raw = "hello\x01\xff",
                                .raw_len = 7,
                                .code = "AR",
                                .control_id = "ACK-5",
                                .text = "bad \xC3"};
    struct hl7_msg *ack = ack_of(&spec);

    CHECK(ack != NULL);
    CHECK(hl7_msg_get(ack, "MSA", 0, 2, 0, 1, 1) == NULL);
    CHECK_STR(hl7_msg_version(ack), "2.5.1");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 3, 0, 1, 1), "207");
    CHECK_STR(hl7_msg_get(ack, "ERR", 0, 8, 0, 1, 1), "bad ?");
    CHECK(hl7_msg_get(ack, "ERR", 0, 2, 0, 1, 1) == NULL);
    hl7_msg_destroy(ack);
    spec.raw = NULL;
    spec.raw_len = 0;
    ack = ack_of(&spec);
    CHECK_STR(hl7_msg_get(ack, "MSA", 0, 1, 0, 1, 1), "AR");
    hl7_msg_destroy(ack);
}

static void ack_build_refuses_a_bad_code_or_missing_control_id(void)
{
    struct hl7_ack_spec spec = {.code = "OK", .control_id = "X"};
    struct gw_error err;
    char *out;
    size_t len;

    CHECK_INT(hl7_ack_build(&spec, &out, &len, &err), GW_E_INTERNAL);
    CHECK(out == NULL);
    spec.code = "AA";
    spec.control_id = "";
    CHECK_INT(hl7_ack_build(&spec, &out, &len, &err), GW_E_INTERNAL);
}

static void ack_read_reads_the_sample_and_refuses_non_acks(void)
{
    struct hl7_msg *ae = parse_file("ack_ae.hl7");
    struct hl7_msg *omi = parse_file("omi_o23.hl7");
    struct hl7_msg *bad = parse(with_head("MSA|XX|1\r"));
    struct hl7_msg *empty = parse(with_head("MSA|AA\r"));
    struct hl7_msg *old =
        parse(with_head("MSA|AE|Q1|texte ancien\rERR|PID^1^3^101&Absent&HL70357\r"));
    struct hl7_ack ack;
    struct gw_error err;

    CHECK_INT(hl7_ack_read(ae, &ack, &err), GW_OK);
    CHECK_STR(ack.code, "AE");
    CHECK_STR(ack.control_id, "MSG00001");
    CHECK_STR(ack.text, "Code acte LHLH002 inconnu du RIS");
    CHECK_INT(ack.error_code, 103);
    CHECK_INT(hl7_ack_read(omi, &ack, &err), GW_E_INPUT);
    CHECK(ack.code == NULL);
    CHECK_INT(hl7_ack_read(bad, &ack, &err), GW_E_INPUT);
    CHECK_INT(hl7_ack_read(empty, &ack, &err), GW_E_INPUT);
    CHECK_INT(hl7_ack_read(old, &ack, &err), GW_OK);
    CHECK_STR(ack.text, "Absent");
    CHECK_INT(ack.error_code, 101);
    hl7_msg_destroy(ae);
    hl7_msg_destroy(omi);
    hl7_msg_destroy(bad);
    hl7_msg_destroy(empty);
    hl7_msg_destroy(old);
}

static void err_texts_follow_table_0357(void)
{
    struct hl7_err e;

    CHECK_STR(hl7_err_text(HL7_ERR_SEGMENT_SEQUENCE), "Segment sequence error");
    CHECK_STR(hl7_err_text(HL7_ERR_TABLE_VALUE), "Table value not found");
    CHECK_STR(hl7_err_text(HL7_ERR_UNSUPPORTED_TYPE), "Unsupported message type");
    CHECK_STR(hl7_err_text(HL7_ERR_UNSUPPORTED_EVENT), "Unsupported event code");
    CHECK_STR(hl7_err_text(HL7_ERR_INTERNAL), "Application internal error");
    CHECK_STR(hl7_err_text((enum hl7_err_code)999), "Application internal error");
    hl7_err_set(&e, HL7_ERR_DATA_TYPE, "bad name", 2, 3, 4);
    CHECK_STR(e.segment, "");
    CHECK_INT(e.repetition, 1);
    hl7_err_clear(&e);
    CHECK_INT(e.code, HL7_ERR_NONE);
    hl7_err_set(NULL, HL7_ERR_DATA_TYPE, "PID", 1, 1, 1);
}

/* ---------------------------------------------------------------- MLLP */

/* Feeds data in chunks of size chunk; writes frames separated by "|" and
 * oversize events as "!" into out. */
static void decode(struct hl7_mllp *d, const char *data, size_t len, size_t chunk,
                   struct gw_buf *out)
{
    size_t off = 0;

    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk, used;
        const char *frame;
        size_t frame_len;
        enum gw_code rc = hl7_mllp_feed(d, data + off, n, &used, &frame, &frame_len, NULL);

        CHECK(used <= n);
        off += used;
        if (rc == GW_E_LIMIT)
            gw_buf_puts(out, "!");
        else if (frame) {
            gw_buf_append(out, frame, frame_len);
            gw_buf_puts(out, "|");
        }
        if (used == 0 && !frame && rc == GW_OK)
            break;
    }
}

static void mllp_frame_wraps_a_message(void)
{
    struct gw_buf b;

    gw_buf_init(&b, 100);
    hl7_mllp_frame(&b, "MSH|x\r", 6);
    CHECK_INT(b.len, 9);
    CHECK(memcmp(b.data, "\x0bMSH|x\r\x1c\r", 9) == 0);
    gw_buf_cleanup(&b);
}

static void mllp_decoder_fed_byte_by_byte_or_at_once_gives_the_same_frames(void)
{
    const char wire[] = "\x0bMSH|one\r\x1c\r\x0bMSH|two\r\x1c\r";
    size_t chunk;

    for (chunk = 1; chunk <= sizeof wire; chunk++) {
        struct hl7_mllp d;
        struct gw_buf out;

        hl7_mllp_init(&d, 1000);
        gw_buf_init(&out, 1000);
        decode(&d, wire, sizeof wire - 1, chunk, &out);
        CHECK_STR(out.data, "MSH|one\r|MSH|two\r|");
        CHECK_INT(d.n_junk, 0);
        gw_buf_cleanup(&out);
        hl7_mllp_cleanup(&d);
    }
}

static void mllp_decoder_skips_junk_and_restarted_frames(void)
{
    const char wire[] = "junk\r\n\x0bpartial\x0bMSH|a\x1c\rnoise\x0bMSH|b\x1c\x0bMSH|c\x1c\r";
    struct hl7_mllp d;
    struct gw_buf out;

    hl7_mllp_init(&d, 1000);
    gw_buf_init(&out, 1000);
    decode(&d, wire, sizeof wire - 1, 1000, &out);
    CHECK_STR(out.data, "MSH|a|MSH|b|MSH|c|");
    CHECK_INT(d.n_junk, strlen("junk\r\n") + strlen("partial") + 1 + strlen("noise"));
    gw_buf_cleanup(&out);
    hl7_mllp_cleanup(&d);
}

static void mllp_decoder_reports_an_oversized_frame_then_recovers(void)
{
    const char wire[] = "\x0b"
                        "0123456789ABCDEFGHIJ\x1c\r\x0bMSH|ok\x1c\r";
    size_t chunk;

    for (chunk = 1; chunk <= sizeof wire; chunk += 3) {
        struct hl7_mllp d;
        struct gw_buf out;

        hl7_mllp_init(&d, 10);
        gw_buf_init(&out, 1000);
        decode(&d, wire, sizeof wire - 1, chunk, &out);
        CHECK_STR(out.data, "!MSH|ok|");
        CHECK_INT(d.n_oversized, 1);
        gw_buf_cleanup(&out);
        hl7_mllp_cleanup(&d);
    }
}

static int make_pair(int fds[2])
{
    int rc = socketpair(AF_UNIX, SOCK_STREAM, 0, fds);

    CHECK_INT(rc, 0);
    return rc;
}

static void mllp_socket_helpers_carry_frames_over_a_socketpair(void)
{
    int fds[2];
    struct hl7_mllp d;
    struct gw_error err;
    const char *frame;
    size_t len;

    if (make_pair(fds))
        return;
    hl7_mllp_init(&d, HL7_MAX_MESSAGE);
    CHECK_INT(hl7_mllp_write(fds[0], B_MSG1, strlen(B_MSG1), 1000, &err), GW_OK);
    CHECK_INT(hl7_mllp_write(fds[0], B_MSG2, strlen(B_MSG2), 1000, &err), GW_OK);
    CHECK_INT(hl7_mllp_read(&d, fds[1], 1000, &frame, &len, &err), GW_OK);
    CHECK(frame && len == strlen(B_MSG1) && memcmp(frame, B_MSG1, len) == 0);
    CHECK_INT(hl7_mllp_read(&d, fds[1], 1000, &frame, &len, &err), GW_OK);
    CHECK(frame && len == strlen(B_MSG2) && memcmp(frame, B_MSG2, len) == 0);
    close(fds[0]);
    CHECK_INT(hl7_mllp_read(&d, fds[1], 1000, &frame, &len, &err), GW_OK);
    CHECK(frame == NULL);
    close(fds[1]);
    hl7_mllp_cleanup(&d);
}

static void mllp_read_times_out_and_reports_a_close_inside_a_frame(void)
{
    int fds[2];
    struct hl7_mllp d;
    struct gw_error err;
    const char *frame;
    size_t len;
    int64_t start;

    if (make_pair(fds))
        return;
    hl7_mllp_init(&d, 1000);
    start = gw_mono_ms();
    CHECK_INT(hl7_mllp_read(&d, fds[1], 80, &frame, &len, &err), GW_E_IO);
    CHECK(gw_mono_ms() - start >= 70);
    CHECK(strstr(err.msg, "timed out") != NULL);
    CHECK_INT(write(fds[0], "\x0bMSH|half", 9), 9);
    close(fds[0]);
    CHECK_INT(hl7_mllp_read(&d, fds[1], 1000, &frame, &len, &err), GW_E_IO);
    CHECK(strstr(err.msg, "inside a frame") != NULL);
    close(fds[1]);
    hl7_mllp_cleanup(&d);
}

struct big_write {
    int fd;
    const char *data;
    size_t len;
    enum gw_code rc;
};

static void *write_big(void *arg)
{
    struct big_write *bw = arg;

    bw->rc = hl7_mllp_write(bw->fd, bw->data, bw->len, 5000, NULL);
    return NULL;
}

static void mllp_write_sends_large_frames_whole_and_times_out_on_a_stuck_peer(void)
{
    size_t n = 3 * 1024 * 1024;
    char *big = malloc(n);
    struct big_write bw;
    pthread_t thread;
    int fds[2];
    struct hl7_mllp d;
    struct gw_error err;
    const char *frame;
    size_t len;

    if (!big || make_pair(fds)) {
        free(big);
        return;
    }
    memset(big, 'x', n);
    bw = (struct big_write){.fd = fds[0], .data = big, .len = n};
    hl7_mllp_init(&d, HL7_MAX_MESSAGE);
    CHECK_INT(pthread_create(&thread, NULL, write_big, &bw), 0);
    CHECK_INT(hl7_mllp_read(&d, fds[1], 5000, &frame, &len, &err), GW_OK);
    pthread_join(thread, NULL);
    CHECK_INT(bw.rc, GW_OK);
    CHECK(frame && len == n && memcmp(frame, big, n) == 0);
    /* Nobody reads fds[1] now: the write must give up at its deadline. */
    CHECK_INT(hl7_mllp_write(fds[0], big, n, 100, &err), GW_E_IO);
    CHECK(strstr(err.msg, "timed out") != NULL);
    close(fds[0]);
    close(fds[1]);
    hl7_mllp_cleanup(&d);
    free(big);
}

int main(void)
{
    RUN(parse_numbers_msh_fields_from_the_separator);
    RUN(parse_reads_repetitions_components_and_subcomponents);
    RUN(parse_takes_custom_encoding_characters_from_msh);
    RUN(parse_accepts_lf_crlf_blank_lines_and_a_byte_order_mark);
    RUN(parse_unescapes_every_delimiter_escape);
    RUN(parse_decodes_hex_escapes_and_rejects_bad_bytes);
    RUN(parse_drops_formatting_escapes_and_keeps_unknown_ones);
    RUN(parse_tolerates_the_truncation_character);
    RUN(parse_converts_latin1_to_utf8);
    RUN(parse_rejects_unsupported_charsets_and_invalid_utf8);
    RUN(parse_rejects_empty_input_and_a_missing_msh);
    RUN(parse_rejects_bad_encoding_characters);
    RUN(parse_rejects_bad_segment_names);
    RUN(parse_rejects_nul_bytes_with_their_place);
    RUN(parse_stops_at_segment_field_and_repetition_bounds);
    RUN(parse_rejects_an_over_long_message);
    RUN(parse_requires_type_control_id_and_version);
    RUN(parse_rejects_a_second_message_or_batch_segments);
    RUN(absent_and_empty_values_are_null_and_explicit_nulls_are_kept);
    RUN(segments_walk_the_order_groups_of_the_omi_sample);
    RUN(samples_of_siu_and_oru_read_as_the_ris_sends_them);
    RUN(parse_survives_truncated_and_corrupted_samples);
    RUN(writer_escapes_delimiters_line_breaks_and_controls);
    RUN(escape_agrees_with_the_bytewise_escape_for_every_byte_and_pair);
    RUN(escape_of_a_long_text_is_the_bytewise_escape);
    RUN(writer_round_trips_accented_names_and_every_special_character);
    RUN(writer_places_repetitions_components_and_subcomponents);
    RUN(writer_builds_msh_with_defaults);
    RUN(writer_copies_a_parsed_field_with_all_its_parts);
    RUN(writer_refuses_positions_that_go_back);
    RUN(writer_refuses_bad_names_bad_utf8_and_misuse);
    RUN(writer_stops_at_its_cap);
    RUN(batch_reads_a_file_with_right_counts);
    RUN(batch_rejects_wrong_counts);
    RUN(batch_accepts_single_bare_and_empty_batches);
    RUN(batch_keeps_a_bad_message_with_its_error_and_bytes);
    RUN(batch_rejects_broken_structure);
    RUN(batch_encode_wraps_messages_and_parses_back);
    RUN(ack_accepts_with_aa_and_swaps_sender_and_receiver);
    RUN(ack_error_carries_err_location_code_severity_and_text);
    RUN(ack_rejects_an_unsupported_version_with_ar);
    RUN(ack_from_bytes_that_failed_recovers_control_id_and_applications);
    RUN(ack_from_pure_garbage_still_builds);
    RUN(ack_build_refuses_a_bad_code_or_missing_control_id);
    RUN(ack_read_reads_the_sample_and_refuses_non_acks);
    RUN(err_texts_follow_table_0357);
    RUN(mllp_frame_wraps_a_message);
    RUN(mllp_decoder_fed_byte_by_byte_or_at_once_gives_the_same_frames);
    RUN(mllp_decoder_skips_junk_and_restarted_frames);
    RUN(mllp_decoder_reports_an_oversized_frame_then_recovers);
    RUN(mllp_socket_helpers_carry_frames_over_a_socketpair);
    RUN(mllp_read_times_out_and_reports_a_close_inside_a_frame);
    RUN(mllp_write_sends_large_frames_whole_and_times_out_on_a_stuck_peer);
    return check_summary();
}
