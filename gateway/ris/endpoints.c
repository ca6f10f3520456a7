/* endpoints.c -- the RIS's HTTP side (role ris): GET /ris/orders leases
 * orders and answers them as one batch, POST /ris/acks settles them, POST
 * /ris/messages takes status, appointments and reports.
 *
 * Promises: a pulled batch is answered only after the commit that leased its
 * messages and recorded the Export AuditEvent; an ACK of an ACK is answered
 * only after the commit that settled it (and its Import AuditEvent). A RIS
 * client pulls and settles only the orders of its own sites whose delivery
 * is "pull" (a push site's orders are never handed out twice).
 */
#include "ris/ris_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HL7_MEDIA_TYPE "application/hl7-v2; charset=utf-8"

/* ------------------------------------------------------------ pull */

struct pull {
    struct ris *ris;
    const struct http_request *req;
    const char **sites;
    size_t n_sites;
    size_t max;
    struct store_outbox_msg *msgs;
    size_t n_msgs;
    char *batch;
    size_t batch_len;
};

/* The client's sites whose orders are pulled (not pushed). */
static bool pull_sites(struct pull *p)
{
    const struct auth_identity *who = p->req->who;
    size_t i;

    p->sites = calloc(who->n_sites + 1, sizeof *p->sites);
    if (!p->sites)
        return false;
    for (i = 0; i < who->n_sites; i++) {
        const struct config_site *s = config_site_find(p->ris->cfg, who->sites[i]);

        if (s && s->delivery && strcmp(s->delivery, "pull") == 0)
            p->sites[p->n_sites++] = s->id;
    }
    return true;
}

static enum gw_code pull_apply(struct store_txn *txn, void *vctx, struct gw_error *err)
{
    struct pull *p = vctx;
    const struct config_site *first =
        p->n_sites ? config_site_find(p->ris->cfg, p->sites[0]) : NULL;
    char batch_id[RIS_MAX_CONTROL_ID];
    struct hl7_bytes *list;
    struct hl7_batch_info info = {.receiving_app = p->req->who->client_name,
                                  .control_id = batch_id};
    size_t i;
    enum gw_code rc = GW_OK;

    if (p->n_sites)
        rc =
            store_txn_outbox_lease(txn, p->sites, p->n_sites, p->max,
                                   (int64_t)p->ris->cfg->lease_s * 1000, &p->msgs, &p->n_msgs, err);
    if (!rc)
        rc = ris_control_id(batch_id, err);
    if (rc)
        return rc;
    info.sending_app = first ? first->sending_app : RIS_PLACER_NAMESPACE;
    info.sending_facility = first ? first->sending_facility : RIS_PLACER_NAMESPACE;
    list = calloc(p->n_msgs + 1, sizeof *list);
    if (!list)
        return gw_fail(err, GW_E_NOMEM, "no memory for a batch");
    for (i = 0; i < p->n_msgs; i++)
        list[i] = (struct hl7_bytes){p->msgs[i].message, p->msgs[i].message_len};
    rc = hl7_batch_encode(&info, list, p->n_msgs, &p->batch, &p->batch_len, err);
    free(list);
    return rc;
}

static void exchange_event(struct audit_event *ev, const struct http_request *req,
                           enum audit_kind kind, const char *subtype, char action,
                           enum gw_code outcome, const struct gw_error *why)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ev->subtype = subtype;
    ev->action = action;
    ev->outcome = audit_outcome_of(outcome);
    ev->outcome_desc = outcome ? why->msg : NULL;
    ev->who = req->who;
    ev->peer = req->peer;
    ev->request_id = req->request_id;
}

/* Room for the strings of one audited message. */
struct slot {
    char type[16];
    char ref[RIS_MAX_REF];
};

static enum gw_code pull_audit(struct store_txn *txn, void *vctx, enum gw_code outcome,
                               const struct gw_error *why, struct gw_error *err)
{
    struct pull *p = vctx;
    const struct config_site *first =
        p->n_sites ? config_site_find(p->ris->cfg, p->sites[0]) : NULL;
    struct audit_event ev;
    size_t i, n = outcome ? 0 : p->n_msgs;
    struct ris_audit_item *items = calloc(n + 1, sizeof *items);
    struct slot *slots = calloc(n + 1, sizeof *slots);
    enum gw_code rc;

    if (!items || !slots) {
        free(items);
        free(slots);
        return gw_fail(err, GW_E_NOMEM, "no memory for the audit of a pull");
    }
    exchange_event(&ev, p->req, AUDIT_HL7_EXPORT, first ? first->message_type : "OMI^O23", 'R',
                   outcome, why);
    ev.path = "GET /ris/orders";
    for (i = 0; i < n; i++) {
        ris_message_type(p->msgs[i].message, p->msgs[i].message_len, slots[i].type);
        snprintf(slots[i].ref, sizeof slots[i].ref, "%s/%s", p->msgs[i].ref_type,
                 p->msgs[i].ref_id);
        items[i] = (struct ris_audit_item){slots[i].ref, p->msgs[i].control_id, slots[i].type};
    }
    rc = ris_audit_items(txn, &ev, items, n, err);
    free(items);
    free(slots);
    return rc;
}

static bool parse_max(struct ris *ris, const struct http_request *req, size_t *max)
{
    const char *text = http_request_param(req, "max");
    long v;

    *max = (size_t)ris->cfg->max_pull;
    if (!text)
        return true;
    if (!gw_parse_long(text, 1, 1L << 30, &v))
        return false;
    if (v < ris->cfg->max_pull)
        *max = (size_t)v;
    return true;
}

void ris_handle_pull(struct ris *ris, struct http_request *req, struct http_response *resp)
{
    struct pull p = {.ris = ris, .req = req};
    struct gw_error err;
    size_t i;

    if (!parse_max(ris, req, &p.max)) {
        http_respond_error(resp, 400, "invalid", "max must be a whole number of at least 1", "max");
        return;
    }
    if (!pull_sites(&p)) {
        http_respond_error(resp, 503, "transient", "no memory for the pull", NULL);
        return;
    }
    if (store_write(ris->store, pull_apply, pull_audit, &p, &err) != GW_OK) {
        http_respond_gw_error(resp, &err);
    } else {
        for (i = 0; i < p.n_msgs; i++)
            if (p.msgs[i].attempts > 1)
                ris_metric_retry(p.msgs[i].site);
        http_respond_owned(resp, 200, HL7_MEDIA_TYPE, p.batch, p.batch_len);
        p.batch = NULL;
    }
    free(p.batch);
    store_outbox_list_free(p.msgs, p.n_msgs);
    free(p.sites);
}

/* ------------------------------------------------------------ acks */

struct ack_item {
    const struct hl7_msg *msg; /* NULL when it did not parse */
    struct hl7_ack ack;
    bool is_ack;         /* it has a readable MSA */
    struct gw_error why; /* why it was not read */
    struct ris_settled settled;
};

struct acks {
    struct ris *ris;
    const struct http_request *req;
    struct hl7_batch *batch;
    struct ack_item *items;
    size_t n;
};

/* When every ACK read accepts its message (the usual batch), they are
 * settled as a set; *done says whether that was the case. */
static enum gw_code acks_accept_all(struct store_txn *txn, struct acks *a, bool *done,
                                    struct gw_error *err)
{
    const struct auth_identity *who = a->req->who;
    const char **ids = calloc(a->n + 1, sizeof *ids);
    struct ris_settled *settled = calloc(a->n + 1, sizeof *settled);
    size_t i, n = 0;
    enum gw_code rc = GW_OK;

    *done = false;
    if (!ids || !settled) {
        rc = gw_fail(err, GW_E_NOMEM, "no memory for the ACKs");
        goto out;
    }
    for (i = 0; i < a->n; i++) {
        if (a->items[i].is_ack && !ris_ack_accepted(a->items[i].ack.code))
            goto out;
        if (a->items[i].is_ack)
            ids[n++] = a->items[i].ack.control_id;
    }
    rc = ris_settle_accepted(txn, ids, n, (const char *const *)who->sites, who->n_sites, settled,
                             err);
    for (i = 0, n = 0; !rc && i < a->n; i++)
        if (a->items[i].is_ack)
            a->items[i].settled = settled[n++];
    *done = !rc;
out:
    free(ids);
    free(settled);
    return rc;
}

static enum gw_code acks_apply(struct store_txn *txn, void *vctx, struct gw_error *err)
{
    struct acks *a = vctx;
    const struct auth_identity *who = a->req->who;
    size_t i;
    bool done;
    enum gw_code rc = acks_accept_all(txn, a, &done, err);

    for (i = 0; !rc && !done && i < a->n; i++) {
        struct ack_item *it = &a->items[i];

        if (it->is_ack)
            rc = ris_settle(a->ris, txn, it->ack.control_id, (const char *const *)who->sites,
                            who->n_sites, it->ack.code, it->ack.text, &it->settled, err);
    }
    return rc;
}

static enum gw_code acks_audit(struct store_txn *txn, void *vctx, enum gw_code outcome,
                               const struct gw_error *why, struct gw_error *err)
{
    struct acks *a = vctx;
    struct audit_event ev;
    struct ris_audit_item *items = calloc(a->n + 1, sizeof *items);
    size_t i, n = 0;
    enum gw_code rc;

    if (!items)
        return gw_fail(err, GW_E_NOMEM, "no memory for the audit of ACKs");
    exchange_event(&ev, a->req, AUDIT_HL7_IMPORT, "ACK", 'U', outcome, why);
    ev.path = "POST /ris/acks";
    for (i = 0; !outcome && i < a->n; i++)
        if (a->items[i].is_ack)
            items[n++] =
                (struct ris_audit_item){a->items[i].settled.found ? a->items[i].settled.ref : NULL,
                                        a->items[i].ack.control_id, "ACK"};
    rc = ris_audit_items(txn, &ev, items, n, err);
    free(items);
    return rc;
}

/* The ACK answering one ACK: AA when it settled a message of the client's
 * sites (or one already settled), AE when the control id is unknown, AR when
 * it could not be read. */
static enum gw_code answer_ack(const struct acks *a, size_t i, char **out, size_t *out_len,
                               struct gw_error *err)
{
    const struct ack_item *it = &a->items[i];
    char id[RIS_MAX_CONTROL_ID], text[GW_ERROR_MSG_MAX + 80];
    struct hl7_err where;
    struct hl7_ack_spec spec = {.msg = it->msg, .control_id = id};
    enum gw_code rc = ris_control_id(id, err);

    if (rc)
        return rc;
    spec.raw = hl7_batch_raw(a->batch, i, &spec.raw_len);
    if (!it->is_ack) {
        spec.code = "AR";
        spec.where = it->msg ? NULL : hl7_batch_where(a->batch, i);
        spec.text = it->why.msg;
    } else if (!it->settled.found) {
        hl7_err_set(&where, HL7_ERR_UNKNOWN_KEY, "MSA", 1, 2, 0);
        snprintf(text, sizeof text, "no order message of your sites has control id %s",
                 it->ack.control_id);
        spec = (struct hl7_ack_spec){it->msg, spec.raw, spec.raw_len, "AE", id, NULL, &where, text};
    } else {
        spec.code = "AA";
    }
    return hl7_ack_build(&spec, out, out_len, err);
}

/* One answer, or a batch of them when the request was a batch. */
static enum gw_code answer_all(struct ris *ris, struct hl7_batch *batch, char **answers,
                               size_t *lens, size_t n, char **out, size_t *out_len,
                               struct gw_error *err)
{
    struct hl7_bytes *list;
    char batch_id[RIS_MAX_CONTROL_ID];
    struct hl7_batch_info info = {.sending_app = RIS_PLACER_NAMESPACE,
                                  .sending_facility = RIS_PLACER_NAMESPACE,
                                  .control_id = batch_id};
    const struct hl7_seg *head = hl7_batch_header(batch);
    size_t i;
    enum gw_code rc;

    (void)ris;
    if (n == 1 && !hl7_batch_has_headers(batch)) {
        *out = answers[0];
        *out_len = lens[0];
        answers[0] = NULL;
        return GW_OK;
    }
    rc = ris_control_id(batch_id, err);
    if (rc)
        return rc;
    info.reference_id = head ? hl7_seg_field(head, 11) : NULL;
    list = calloc(n + 1, sizeof *list);
    if (!list)
        return gw_fail(err, GW_E_NOMEM, "no memory for a batch of ACKs");
    for (i = 0; i < n; i++)
        list[i] = (struct hl7_bytes){answers[i], lens[i]};
    rc = hl7_batch_encode(&info, list, n, out, out_len, err);
    free(list);
    return rc;
}

static void read_acks(struct acks *a)
{
    size_t i;

    for (i = 0; i < a->n; i++) {
        struct ack_item *it = &a->items[i];

        it->msg = hl7_batch_msg(a->batch, i);
        if (!it->msg)
            it->why = *hl7_batch_error(a->batch, i);
        else
            it->is_ack = hl7_ack_read(it->msg, &it->ack, &it->why) == GW_OK;
    }
}

static void count_deliveries(const struct acks *a)
{
    size_t i;

    for (i = 0; i < a->n; i++)
        if (a->items[i].settled.found && !a->items[i].settled.was_final)
            ris_metric_delivery(a->items[i].settled.site,
                                a->items[i].settled.is_dead ? "refused" : "acked");
}

/* Builds every answer and sends them (one, or a batch). */
static void respond_answers(struct ris *ris, struct hl7_batch *batch, char **answers, size_t *lens,
                            size_t n, struct http_response *resp)
{
    char *body = NULL;
    size_t len = 0;
    struct gw_error err;

    if (answer_all(ris, batch, answers, lens, n, &body, &len, &err) != GW_OK)
        http_respond_gw_error(resp, &err);
    else
        http_respond_owned(resp, 200, HL7_MEDIA_TYPE, body, len);
}

static void free_answers(char **answers, size_t n)
{
    size_t i;

    for (i = 0; answers && i < n; i++)
        free(answers[i]);
    free(answers);
}

/* Parses the body as one message or a batch; answers 400 when it is neither. */
static struct hl7_batch *parse_body(const struct http_request *req, struct http_response *resp)
{
    struct hl7_batch *batch = NULL;
    struct gw_error err;

    if (hl7_batch_parse(req->body, req->body_len, &batch, NULL, &err) != GW_OK) {
        http_respond_error(resp, err.code == GW_E_LIMIT ? 413 : 400,
                           err.code == GW_E_LIMIT ? "too-costly" : "structure", err.msg, NULL);
        return NULL;
    }
    if (hl7_batch_count(batch) == 0) {
        http_respond_error(resp, 400, "required", "the body holds no HL7 v2 message", NULL);
        hl7_batch_destroy(batch);
        return NULL;
    }
    return batch;
}

void ris_handle_acks(struct ris *ris, struct http_request *req, struct http_response *resp)
{
    struct acks a = {.ris = ris, .req = req};
    struct gw_error err;
    char **answers = NULL;
    size_t *lens = NULL, i;

    a.batch = parse_body(req, resp);
    if (!a.batch)
        return;
    a.n = hl7_batch_count(a.batch);
    a.items = calloc(a.n, sizeof *a.items);
    answers = calloc(a.n, sizeof *answers);
    lens = calloc(a.n, sizeof *lens);
    if (!a.items || !answers || !lens) {
        http_respond_error(resp, 503, "transient", "no memory for the ACKs", NULL);
        goto out;
    }
    read_acks(&a);
    if (store_write(ris->store, acks_apply, acks_audit, &a, &err) != GW_OK) {
        http_respond_gw_error(resp, &err);
        goto out;
    }
    count_deliveries(&a);
    for (i = 0; i < a.n; i++)
        if (answer_ack(&a, i, &answers[i], &lens[i], &err) != GW_OK) {
            http_respond_gw_error(resp, &err);
            goto out;
        }
    respond_answers(ris, a.batch, answers, lens, a.n, resp);
out:
    free_answers(answers, a.n);
    free(lens);
    free(a.items);
    hl7_batch_destroy(a.batch);
}

/* ------------------------------------------------------------ messages */

void ris_handle_messages(struct ris *ris, struct http_request *req, struct http_response *resp)
{
    struct hl7_batch *batch = parse_body(req, resp);
    struct ris_sender from = {req->peer, req->who->client_name, req->who, false};
    struct gw_error err;
    char **answers = NULL;
    size_t *lens = NULL, i, n;

    if (!batch)
        return;
    n = hl7_batch_count(batch);
    answers = calloc(n, sizeof *answers);
    lens = calloc(n, sizeof *lens);
    if (!answers || !lens) {
        http_respond_error(resp, 503, "transient", "no memory for the messages", NULL);
        goto out;
    }
    for (i = 0; i < n; i++) {
        size_t len;
        const char *raw = hl7_batch_raw(batch, i, &len);

        if (ris_inbound(ris, &from, raw, len, &answers[i], &lens[i], &err) != GW_OK) {
            http_respond_gw_error(resp, &err);
            goto out;
        }
    }
    respond_answers(ris, batch, answers, lens, n, resp);
out:
    free_answers(answers, n);
    free(lens);
    hl7_batch_destroy(batch);
}
