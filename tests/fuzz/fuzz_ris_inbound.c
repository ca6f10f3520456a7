/* fuzz_ris_inbound.c -- libFuzzer target for what a RIS sends in: any bytes
 * through ris_inbound() (parse, dedupe, effects on a real SQLite store holding
 * one referral with placer number "fuzz-order", ACK).
 *
 * Beyond "no crash, no leak", it aborts when an answer breaks the contract:
 * ris_inbound() must always give an ACK that itself parses, whose MSA-1 is
 * AA, AE or AR, and whose MSA-2 names the message's MSH-10 when it parsed.
 * Build by hand with the usual command, listing the .c files of every module
 * but rest/ (util config auth http fhir mapping hl7v2 store audit ris) and
 * adding libmicrohttpd, gnutls and sqlite3 to the pkg-config packages.
 */
#include "ris/ris_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config cfg;
static struct config_site site = {"bachaumont",
                                  "Bachaumont Radiology",
                                  "urn:oid:1.2.250.1.71.4.2.2",
                                  "750000102",
                                  NULL,
                                  "FHIRGW",
                                  "FHIRGW",
                                  "RIS",
                                  "BACHAUMONT",
                                  "OMI^O23",
                                  "pull",
                                  NULL,
                                  0};
static struct store *st;
static struct ris *ris;

static enum gw_code put(void *ctx, struct store_txn *txn, json_t *res, const char *owner,
                        const char *s, long if_match, struct store_written *out,
                        struct gw_error *err)
{
    const char *focus =
        json_string_value(json_object_get(json_object_get(res, "focus"), "reference"));
    const char *based = json_string_value(
        json_object_get(json_array_get(json_object_get(res, "basedOn"), 0), "reference"));
    struct store_index_entry idx[2];
    struct store_put p = {.type = json_string_value(json_object_get(res, "resourceType")),
                          .id = json_string_value(json_object_get(res, "id")),
                          .resource = res,
                          .owner = owner,
                          .site = s,
                          .index = idx,
                          .if_match = if_match};

    (void)ctx;
    if (focus)
        idx[p.n_index++] = (struct store_index_entry){"focus", NULL, focus, 0, 0};
    if (based)
        idx[p.n_index++] = (struct store_index_entry){"based-on", NULL, based, 0, 0};
    return store_txn_put(txn, &p, out, err);
}

static enum gw_code seed(struct store_txn *txn, void *ctx, struct gw_error *err)
{
    json_t *sr = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "resourceType", "ServiceRequest", "id",
                           "fuzz-order", "status", "active", "intent", "order", "subject",
                           "reference", "Patient/p1");
    json_t *task = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "resourceType", "Task", "id",
                             "fuzz-task", "status", "requested", "intent", "order", "focus",
                             "reference", "ServiceRequest/fuzz-order");
    struct store_written w;
    enum gw_code rc = put(ctx, txn, sr, "gp", "bachaumont", 0, &w, err);

    if (!rc)
        rc = put(ctx, txn, task, "gp", "bachaumont", 0, &w, err);
    json_decref(sr);
    json_decref(task);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char url[128];
    struct ris_hooks hooks = {put, NULL};
    struct gw_error err;

    (void)argc;
    (void)argv;
    gw_log_set_level(GW_LOG_ERROR);
    snprintf(url, sizeof url, "sqlite:/tmp/fuzz-ris-%ld.db", (long)getpid());
    cfg = (struct config){.store = url,
                          .commit_timeout_ms = 10000,
                          .max_batch = 16,
                          .read_connections = 1,
                          .audit_hmac_key = "",
                          .mllp_listen = "",
                          .mllp_max_frame_bytes = 1 << 20,
                          .lease_s = 60,
                          .max_pull = 10,
                          .sites = &site,
                          .n_sites = 1,
                          .default_site = "bachaumont"};
    if (store_open(&cfg, &st, &err) != GW_OK || ris_create(&cfg, st, &hooks, &ris, &err) != GW_OK ||
        store_write(st, seed, NULL, NULL, &err) != GW_OK) {
        fprintf(stderr, "fuzz setup: %s\n", err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hl7_msg *in = NULL, *ack = NULL;
    char *text = NULL;
    size_t len = 0;
    struct ris_sender from = {"127.0.0.1:9", "fuzz", NULL, true};
    struct gw_error err;
    const char *code;

    if (ris_inbound(ris, &from, (const char *)data, size, &text, &len, &err) != GW_OK)
        abort(); /* an ACK can always be built */
    if (hl7_msg_parse(text, len, &ack, NULL, &err) != GW_OK)
        abort();
    code = hl7_msg_get(ack, "MSA", 0, 1, 0, 1, 1);
    if (!code || (strcmp(code, "AA") && strcmp(code, "AE") && strcmp(code, "AR")))
        abort();
    if (hl7_msg_parse((const char *)data, size, &in, NULL, &err) == GW_OK &&
        strlen(hl7_msg_control_id(in)) < 900 &&
        strcmp(hl7_msg_control_id(in), hl7_msg_get(ack, "MSA", 0, 2, 0, 1, 1)
                                           ? hl7_msg_get(ack, "MSA", 0, 2, 0, 1, 1)
                                           : "") != 0)
        abort();
    hl7_msg_destroy(in);
    hl7_msg_destroy(ack);
    free(text);
    return 0;
}
