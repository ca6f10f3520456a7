/* ris_int.h -- the RIS module's own types and helpers, shared by its .c files
 * and its unit tests only.
 *
 * Files: ris.c (life cycle, wake-ups, ids, metrics), order.c and
 * order_fields.c (ServiceRequest -> OMI^O23 / ORM^O01), outbox.c (settling
 * ACKs, dead letters on the Task, audit of exchanges), endpoints.c (the three
 * HTTP handlers), push.c (MLLP push workers), listener.c (MLLP listener),
 * inbound.c (one inbound message: parse, dedupe, ACK), effects.c and
 * effects_fhir.c (what an inbound message changes in FHIR), v2time.c (HL7
 * DTM <-> epoch, the practice's local time).
 */
#ifndef GW_RIS_INT_H
#define GW_RIS_INT_H

#include "ris/ris.h"

#include <pthread.h>
#include <stdint.h>

#include "audit/audit.h"
#include "hl7v2/hl7v2.h"

/* ---------------------------------------------------------------- limits and names */

#define RIS_PLACER_NAMESPACE        "FHIRGW" /* ORC-2.2 / OBR-2.2: the gateway assigns placer numbers */
#define RIS_CONTROL_ID_PREFIX       "GW"
#define RIS_CONTROL_ID_CHARS        18 /* "GW" + 18 = 20 characters (MSH-10 ST 20) */
#define RIS_MAX_ORDER_BYTES         HL7_MAX_MESSAGE
#define RIS_MAX_ID                  64                /* a FHIR id: [A-Za-z0-9.-]{1,64} */
#define RIS_MAX_REF                 (RIS_MAX_ID + 40) /* "ServiceRequest/<id>" */
#define RIS_UID_LEN                 64 /* a DICOM UID: at most 64 characters and NUL */
#define RIS_MLLP_MAX_CONNECTIONS    64 /* inbound MLLP connections served at once */
#define RIS_MLLP_BACKLOG            64
#define RIS_PUSH_POLL_MS            200  /* a push worker looks for work at least this often */
#define RIS_PUSH_CONNECT_TIMEOUT_MS 5000 /* bounded further by push_ack_timeout_ms */
#define RIS_LEASE_RETRY_MS          500 /* an instance without a site's push lease asks this often */
#define RIS_LEASE_MARGIN_MS         1000 /* a lease must outlast an exchange by this much */
#define RIS_STOP_GRACE_MS           1000 /* a message in flight may still get its ACK this long */
#define RIS_MAX_ORDER_GROUPS        64   /* ORC groups handled in one inbound message */
#define RIS_MAX_RELATED             100  /* Appointments / DiagnosticReports looked at per order */
#define RIS_DEFAULT_APPT_MINUTES    30   /* an appointment with a start and no duration */
#define RIS_MAX_REPORT_BYTES        (1024 * 1024) /* report text gathered from OBX */
#define RIS_LOCAL_STD_OFFSET_MIN    60  /* the practice's standard time (Paris: CET, UTC+1) */
#define RIS_LOCAL_DST_OFFSET_MIN    120 /* and its summer time (CEST, UTC+2), EU rules */

#define RIS_V2_0203            "http://terminology.hl7.org/CodeSystem/v2-0203"
#define RIS_FILLER_SYSTEM      MAP_BASE "/sid/filler/"      /* + site id: ORC-3 filler numbers */
#define RIS_APPOINTMENT_SYSTEM MAP_BASE "/sid/appointment/" /* + site id: SCH-2 / SCH-1 */
#define RIS_OUTPUT_SYSTEM      MAP_BASE "/CodeSystem/referral-output"

/* ---------------------------------------------------------------- the object */

struct ris_worker {
    struct ris *ris;
    const struct config_site *site;
    pthread_t thread;
    bool started;
    int fd; /* the connection to the peer, -1 when none */
    struct hl7_mllp dec;
    long backoff_ms;
    char peer[300];         /* "host:port", for logs and audit */
    int64_t lease_token;    /* the push lease held (0: none) */
    int64_t lease_until_ms; /* when it ends, gw_mono_ms() clock */
    int64_t lease_retry_ms; /* without it: next try to take it, not before */
};

struct ris {
    const struct config *cfg;
    struct store *store;
    struct ris_hooks hooks;
    struct audit_refusals *refusals; /* anonymous refusals, counted; may be NULL */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* work enqueued, a connection ended, or stopping */
    bool stopping;
    unsigned long generation; /* bumped by each order enqueued for a push site */
    /* MLLP listener */
    int listen_fd;
    int wake_fds[2]; /* a pipe that wakes the accept loop */
    int port;
    pthread_t acceptor;
    bool acceptor_started;
    int conn_fds[RIS_MLLP_MAX_CONNECTIONS];
    size_t n_conns;
    /* push */
    struct ris_worker *workers;
    size_t n_workers;
    bool collector_added;
};

/* ---------------------------------------------------------------- ris.c */

/* A new message control id: "GW" and gw_sortable_id()'s 18 characters (20 in all: the
 * creation millisecond, then 40 random bits), so the outbox's unique index on control
 * ids grows at its end instead of at a random page per message. */
enum gw_code ris_control_id(char out[RIS_MAX_CONTROL_ID], struct gw_error *err);
/* True once ris_destroy() began. */
bool ris_stopping(struct ris *ris);
/* Wakes the push workers (an order was queued). */
void ris_wake(struct ris *ris);
/* Waits up to ms on the wake-up condition (returns early when woken or stopping). */
void ris_wait(struct ris *ris, long ms);
/* Sleeps ms, returning early only when stopping. */
void ris_sleep(struct ris *ris, long ms);
/* Counters of /metrics; site labels are escaped here. */
void ris_metric_delivery(const char *site, const char *result);
void ris_metric_retry(const char *site);
/* True when text is a FHIR id ([A-Za-z0-9.-]{1,64}). */
bool ris_is_fhir_id(const char *text);

/* ---------------------------------------------------------------- order.c, order_fields.c */

/* Builds the ER7 order for r (OMI^O23 v2.5.1 or ORM^O01 v2.3.1 as r->site
 * says) with control_id and the time now_ms. prior (may be NULL) is an older
 * version of the ServiceRequest that fills what an amended or revoked one no
 * longer carries (code, filler number). On GW_OK *out is new (free()); a new
 * or changed order that names no procedure is GW_E_INPUT. */
enum gw_code ris_order_build(const struct ris_referral *r, enum ris_order_kind kind,
                             const char *control_id, int64_t now_ms, json_t *prior, char **out,
                             size_t *out_len, struct gw_error *err);

/* One coded value as v2 writes it (CWE code^text^system); borrowed strings. */
struct ris_code {
    const char *code, *text, *system;
};

/* The HL7 v2 coding system name (table 0396) for a FHIR system: "CCAM", "C4",
 * "I10", "I10C", "SCT", "LN", "99SPI" (the practice's procedures), else "L". */
const char *ris_v2_system(const char *fhir_system);
/* The FHIR system for a table 0396 name, or NULL when unknown. */
const char *ris_fhir_system(const char *v2_system);
/* The DICOM Study Instance UID of a ServiceRequest: 2.25.<decimal of a UUID>,
 * the id itself when it is a UUID, else a name-based UUID from its SHA-256. */
void ris_study_uid(const char *sr_id, char out[RIS_UID_LEN]);
/* The procedure for OBR-4: the mapped CCAM, CPT or practice code, else the
 * ServiceRequest's (or prior's) code; code NULL when nothing is coded (then
 * text is the indication). */
void ris_order_procedure(const struct ris_referral *r, json_t *prior, struct ris_code *out);
/* The indication in words (reasonCode text or display, a Condition's), or NULL. */
const char *ris_indication_text(const struct ris_referral *r);
/* "XA" (fluoroscopy, the default) or "CT" when the order asks for CT guidance. */
const char *ris_order_modality(const struct ris_referral *r, const struct ris_code *proc);
/* Writes PID-3 (identifiers), PID-5 (names), PID-7, PID-8 and PID-11;
 * GW_E_NOMEM (or GW_E_LIMIT) when the names do not fit in memory. */
enum gw_code ris_write_patient(struct hl7_writer *w, json_t *patient, json_t *service_request,
                               struct gw_error *err);
/* Writes the ordering provider (XCN) at field of the current segment. */
void ris_write_provider(struct hl7_writer *w, int field, json_t *requester,
                        json_t *service_request);

/* ---------------------------------------------------------------- v2time.c */

/* Parses an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) that has at
 * least minutes into epoch ms; without an offset the practice's local time
 * (RIS_LOCAL_*: Paris, EU summer time rules) is assumed. */
bool ris_dtm_to_ms(const char *dtm, int64_t *ms);
/* FHIR date/dateTime -> HL7 DTM ("2026-11-20T09:30:00+01:00" -> "20261120093000+0100");
 * false when text is not one (out has GW_HL7_TS_LEN bytes). */
bool ris_fhir_to_dtm(const char *text, char out[GW_HL7_TS_LEN]);
/* The offset from UTC in minutes of the practice's local time at utc_ms. */
int ris_local_offset_min(int64_t utc_ms);

/* ---------------------------------------------------------------- outbox.c */

/* What settling one ACK did. */
struct ris_settled {
    bool found;     /* the control id names a message of the sites */
    bool was_final; /* it was already acked or dead: nothing changed */
    bool is_dead;   /* the answer was AE/AR: the message is a dead letter now */
    char site[RIS_MAX_REF];
    char ref[RIS_MAX_REF]; /* "ServiceRequest/<id>" */
};

/* True for the ACK codes that accept a message (AA, CA); the others (AE, AR, CE,
 * CR) make it a dead letter. */
bool ris_ack_accepted(const char *code);

/* Settles control_id with an ACK code (AA/CA acked, AE/AR/CE/CR dead) among
 * sites (NULL: any) inside txn; a dead letter moves the referral's Task to
 * failed / delivery-failed with text as statusReason. An unknown control id
 * is not an error: out->found is false. */
enum gw_code ris_settle(struct ris *ris, struct store_txn *txn, const char *control_id,
                        const char *const *sites, size_t n_sites, const char *code,
                        const char *text, struct ris_settled *out, struct gw_error *err);

/* Settles the n control ids with AA, as n calls of ris_settle() in that
 * order would, in a few statements (store_txn_outbox_accept()). */
enum gw_code ris_settle_accepted(struct store_txn *txn, const char *const *control_ids, size_t n,
                                 const char *const *sites, size_t n_sites, struct ris_settled *out,
                                 struct gw_error *err);

/* The Task of ServiceRequest/sr_id (a new reference) with its row (owner,
 * site, version; clean it), or NULL when there is none. */
json_t *ris_task_find(struct store_txn *txn, const char *sr_id, struct store_resource *row,
                      struct gw_error *err, enum gw_code *rc);

/* A Task change: status and businessStatus (RIS_STATUS_*), statusReason text
 * and an output reference (each may be NULL: left as is). */
struct ris_task_change {
    const char *status, *business, *reason;
    const char *output_ref, *output_kind; /* "Appointment/x", "appointment" */
};

/* Applies change to the Task of ServiceRequest/sr_id through the put hook;
 * GW_OK without doing anything when the referral has no Task. ref (may be
 * NULL, RIS_MAX_REF bytes) receives "Task/<id>". */
enum gw_code ris_task_apply(struct ris *ris, struct store_txn *txn, const char *sr_id,
                            const struct ris_task_change *change, char *ref, struct gw_error *err);

/* One exchanged message for the audit trail. */
struct ris_audit_item {
    const char *ref;        /* "ServiceRequest/<id>" or NULL */
    const char *control_id; /* the message's MSH-10 */
    const char *type;       /* "OMI^O23" */
};

/* Records the exchange of n items as AuditEvents of kind (import or export),
 * as many events as AUDIT_MAX_ENTITIES requires, grouped by message type. */
enum gw_code ris_audit_items(struct store_txn *txn, struct audit_event *base,
                             const struct ris_audit_item *items, size_t n, struct gw_error *err);
/* "OMI^O23" from the MSH-9 of an ER7 message (out has 16 bytes; "" when absent). */
void ris_message_type(const char *er7, size_t len, char out[16]);

/* ---------------------------------------------------------------- push.c, listener.c */

enum gw_code ris_push_start(struct ris *ris, struct gw_error *err);
void ris_push_stop(struct ris *ris);
enum gw_code ris_listener_start(struct ris *ris, struct gw_error *err);
void ris_listener_stop(struct ris *ris);

/* ---------------------------------------------------------------- effects */

/* The ServiceRequest an inbound order group is about. */
struct ris_order_ref {
    char id[RIS_MAX_ID + 1];
    struct store_resource row; /* its current row (owner, site, version) */
    json_t *sr;                /* parsed (new reference) */
};

/* What one order group of an inbound message changes. */
struct ris_effect {
    struct ris_order_ref order;
    const char *sr_status;          /* new ServiceRequest.status, or NULL */
    const char *filler, *filler_ns; /* ORC-3 / OBR-3, borrowed from the message */
    struct ris_task_change task;
    json_t *resource;      /* an Appointment or DiagnosticReport to write, or NULL */
    long resource_version; /* > 0: the stored version it replaces */
    const char *output_kind;
    char sr_ref[RIS_MAX_REF];
    char resource_ref[RIS_MAX_REF];
    char task_ref[RIS_MAX_REF];
};

/* The whole of an inbound message's effects and, on refusal, why. */
struct ris_plan {
    struct ris *ris;
    struct store_txn *txn;
    const struct hl7_msg *msg;
    const struct auth_identity *who; /* NULL: MLLP (any site) */
    struct ris_effect effects[RIS_MAX_ORDER_GROUPS];
    size_t n_effects;
    const char *code; /* "AA", or "AE" / "AR" with where and why */
    struct hl7_err where;
    struct gw_error why;
    const char *patient; /* "Patient/<id>" of the first order, for the audit */
    char patient_buf[RIS_MAX_REF];
};

/* Refuses the message: code AE/AR with an ERR code, location and reason. */
void ris_plan_refuse(struct ris_plan *p, const char *code, enum hl7_err_code ec,
                     const char *segment, int sequence, int field, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Fills p->effects from the message (ORM/OMI/ORR/ORI, SIU, ORU). Business
 * problems refuse the plan (GW_OK returned); store failures return an error. */
enum gw_code ris_plan_build(struct ris_plan *p, struct gw_error *err);
/* Writes every effect of an accepted plan. */
enum gw_code ris_plan_apply(struct ris_plan *p, struct gw_error *err);
void ris_plan_cleanup(struct ris_plan *p);

/* Finds the ServiceRequest a placer order number (EI id, namespace) names
 * and that who may see. GW_E_NOTFOUND when none. */
enum gw_code ris_order_lookup(struct ris_plan *p, const char *placer, const char *ns,
                              struct ris_order_ref *out, struct gw_error *err);
void ris_order_ref_cleanup(struct ris_order_ref *o);

/* effects_fhir.c: the resources an inbound message makes. */
/* An Appointment from a SIU message for order o (new reference; NULL with
 * the plan refused when a time is missing or bad, or out of memory). */
json_t *ris_appointment_build(struct ris_plan *p, const struct ris_order_ref *o, const char *status,
                              json_t *previous);
/* A DiagnosticReport from the OBR/OBX of an ORU for order o. */
json_t *ris_report_build(struct ris_plan *p, const struct ris_order_ref *o,
                         const struct hl7_seg *obr, json_t *previous);
/* A v2 CWE at field of seg as a CodeableConcept (new reference), or NULL. */
json_t *ris_concept_from_v2(const struct hl7_seg *seg, int field);
/* Sets member name of obj to a new FHIR instant for epoch ms; -1 on OOM. */
int ris_set_instant(json_t *obj, const char *name, int64_t ms);

#endif
