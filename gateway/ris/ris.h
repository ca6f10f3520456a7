/* ris.h -- the radiology information system side: HL7 v2.5.1 orders made
 * from referrals (OMI^O23 by default, ORM^O01 per site), pulled by the RIS
 * with leases and ACKs or pushed over MLLP, and status, appointments and
 * reports coming back into FHIR (DESIGN §1, §3).
 *
 * Owns:      the MLLP listener thread and its connection threads, one push
 *            worker thread per push site, the outbox metrics collector.
 * Promises:  an order message is written in the same commit as its referral
 *            (ris_order_enqueue runs inside that commit); an ACK, a pulled
 *            batch or an inbound ACK is answered only after the commit that
 *            records its effect and its AuditEvent; the same inbound message
 *            (sender, MSH-10) twice gives the same ACK and no second effect;
 *            an outbound message keeps its control id across redeliveries.
 * Never:     drops an order: AE/AR answers move it to the dead-letter state,
 *            visible on the Task and in the audit trail, never delete it.
 * Threads:   ris_order_enqueue inside a store apply callback (on the writer,
 *            or on a request's thread while the store records the work
 *            ahead of the writer); handlers on the HTTP server's blocking
 *            threads; everything else is internal.
 * Ownership: json_t arguments are borrowed.
 */
#ifndef GW_RIS_H
#define GW_RIS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config/config.h"
#include "http/http.h"
#include "mapping/mapping.h"
#include "store/store.h"
#include "util/util.h"

struct ris;

/* The Task that tracks each referral (created by rest/ when the referral is
 * accepted, moved along by the RIS side): Task.focus is the ServiceRequest,
 * Task.businessStatus a code of this system. Find it with a store query on
 * Task, index "focus" = "ServiceRequest/<id>". */
#define RIS_STATUS_SYSTEM          "https://fhir-gateway.example/fhir/CodeSystem/referral-status"
#define RIS_STATUS_RECEIVED        "received" /* accepted by the gateway, order queued */
#define RIS_STATUS_TRIAGE          "triage"   /* no procedure yet: the practice decides, no order */
#define RIS_STATUS_DECLINED        "declined" /* the practice declined it at triage */
#define RIS_STATUS_ACCEPTED        "accepted" /* the RIS accepted the order (ORC-1 OK) */
#define RIS_STATUS_REJECTED        "rejected" /* ORC-1 UA */
#define RIS_STATUS_SCHEDULED       "scheduled" /* ORC-5 SC, SIU^S12/S13 */
#define RIS_STATUS_IN_PROGRESS     "in-progress"
#define RIS_STATUS_COMPLETED       "completed"
#define RIS_STATUS_REPORTED        "reported" /* ORU^R01: the report is available */
#define RIS_STATUS_CANCELLED       "cancelled"
#define RIS_STATUS_ON_HOLD         "on-hold"
#define RIS_STATUS_DELIVERY_FAILED "delivery-failed" /* the order went to dead letters */
/* The triage flags of the referral are Task.input entries typed with this system
 * (codes from the mapping's MAP_CS_TRIAGE), valueString the reason. A procedure
 * proposed from the GP's words is a Task.input typed RIS_INPUT_SYSTEM /
 * RIS_INPUT_PROPOSED, valueCodeableConcept the procedure. */
#define RIS_INPUT_SYSTEM   "https://fhir-gateway.example/fhir/CodeSystem/task-input"
#define RIS_INPUT_PROPOSED "proposed-procedure"

/* What the RIS side needs from the FHIR side, to write resources with their
 * search index inside a store transaction (implemented by rest/). */
struct ris_hooks {
    /* Writes the next version of resource (borrowed; its id must be set),
     * owned by owner and routed to site, indexed for search. if_match > 0
     * requires that current version. */
    enum gw_code (*put)(void *ctx, struct store_txn *txn, json_t *resource, const char *owner,
                        const char *site, long if_match, struct store_written *out,
                        struct gw_error *err);
    void *ctx;
};

/* Creates the RIS side (nothing runs yet). On GW_OK *out is new. */
enum gw_code ris_create(const struct config *cfg, struct store *store,
                        const struct ris_hooks *hooks, struct ris **out, struct gw_error *err);
/* Starts the MLLP listener (cfg->mllp_listen, unless empty) and a push worker
 * per push site; logs {"event":"mllp-listening","port":N} once listening. */
enum gw_code ris_start(struct ris *ris, struct gw_error *err);
/* Counts the MLLP connections refused (no identity) in r instead of one
 * AuditEvent each; call before ris_start(). r may be NULL. */
struct audit_refusals;
void ris_set_refusals(struct ris *ris, struct audit_refusals *r);
/* The MLLP port bound (0 when not listening). */
int ris_mllp_port(const struct ris *ris);
/* Stops threads (finishing the message in hand) and frees. Accepts NULL. */
void ris_destroy(struct ris *ris);

/* ------------------------------------------------------------ orders */

/* A referral as the order builder sees it (all borrowed, resolved by rest/). */
struct ris_referral {
    json_t *service_request;   /* stored form: id and meta.versionId set */
    json_t *patient;           /* the subject, may be NULL */
    json_t *requester;         /* Practitioner or PractitionerRole, may be NULL */
    json_t *const *conditions; /* reasonReference Conditions */
    size_t n_conditions;
    const struct map_decision *decision; /* procedure, region, laterality, flags; may be NULL */
    const struct config_site *site;      /* where the order goes */
    const char *owner; /* the referral's organisation: a stored subject or requester is read
                          only when it belongs to it (NULL: none is read) */
};

enum ris_order_kind {
    RIS_ORDER_NEW,    /* ORC-1 NW */
    RIS_ORDER_CHANGE, /* ORC-1 XO: the referral was amended */
    RIS_ORDER_CANCEL, /* ORC-1 CA: the referral was revoked */
};

/* Builds the order message for r (OMI^O23 or ORM^O01 as r->site says) and
 * adds it to the outbox inside txn. A patient or requester r leaves NULL is
 * looked up from the ServiceRequest's reference: contained, or stored and
 * owned by r->owner (the visibility rule of a read by the referral's
 * organisation); nothing else ever reaches the order. control_id (may be
 * NULL) receives the new MSH-10 (RIS_MAX_CONTROL_ID bytes). A new or changed order without a
 * procedure (OBR-4) is GW_E_INPUT: nothing is queued. */
#define RIS_MAX_CONTROL_ID 64
enum gw_code ris_order_enqueue(struct ris *ris, struct store_txn *txn, const struct ris_referral *r,
                               enum ris_order_kind kind, char *control_id, struct gw_error *err);

/* ------------------------------------------------------------ HTTP (role ris) */

/* GET /ris/orders?max=N: leases up to N pending orders of the client's sites
 * and answers them as one HL7 v2 batch (FHS/BHS ... BTS/FTS, application/hl7-v2).
 * Only sites whose delivery is "pull" are leased (a push site's orders go out
 * over MLLP only); N defaults to and is capped at max_pull; a bad N is 400.
 * An unacked order is offered again, same bytes and control id, once its
 * lease (lease_s) has passed; an order waits until every earlier message
 * about the same referral is acked or dead (a CA never overtakes its NW). */
void ris_handle_pull(struct ris *ris, struct http_request *req, struct http_response *resp);
/* POST /ris/acks: one ACK or a batch of ACKs settling pulled orders; answers
 * an HL7 v2 ACK (or a batch of them) saying what was settled: 200 with one
 * answer per ACK received (MSA-2 = that ACK's MSH-10), AA when it settled an
 * order of the client's sites (or one already settled: idempotent), AE with
 * ERR 204 when MSA-2 names no order of the client's sites (nothing changes),
 * AR when that ACK cannot be read. An AE/AR ACK makes the order a dead letter
 * (Task failed / delivery-failed with the RIS's reason). A body that is not
 * HL7 v2 at all (or a broken batch) is 400 with an OperationOutcome. */
void ris_handle_acks(struct ris *ris, struct http_request *req, struct http_response *resp);
/* POST /ris/messages: an inbound message (ORM/OMI status, SIU, ORU) or a
 * batch; answers the ACK(s) with 200 (a batch answers a batch); a body that
 * is not HL7 v2 is 400. Each message goes through ris_inbound(). */
void ris_handle_messages(struct ris *ris, struct http_request *req, struct http_response *resp);

/* Who sent an inbound message (all borrowed). */
struct ris_sender {
    const char *address;             /* network address, for the audit trail */
    const char *identity;            /* the authenticated client: its certificate's client name
                                        (HTTPS) or the MLLP peer's configured identity */
    const struct auth_identity *who; /* the sites it speaks for; NULL: every site (an MLLP
                                        peer admitted by mllp_allow alone) */
    bool is_mllp;
};

/* Processes one inbound ER7 message from from, as the MLLP listener and POST
 * /ris/messages do: on return *ack is a new ER7 ACK (free()) to send back,
 * after its effects are committed. The sending facility (MSH-4) must be the
 * receiving_facility of one of the sender's sites (else AR, audited), and
 * only orders of those sites are touched. The
 * placer order number (ORC-2, OBR-2; SIU: SCH-26, else OBR-2, else ORC-2)
 * is <ServiceRequest id>^FHIRGW. ACK: AA applied; AE understood but not
 * applicable (unknown order, unhandled type or event, missing or bad value);
 * AR unreadable, unsupported version or processing id, a sending facility the
 * sender may not speak for, a missing ORC / SCH / OBR, or the store failed
 * (then nothing is recorded: a resend is applied). Duplicates are keyed by
 * the sender's identity, MSH-3^MSH-4 and MSH-10: the same message from
 * another client is never answered with this one's ACK. Returns an error
 * only when no ACK can be built. */
enum gw_code ris_inbound(struct ris *ris, const struct ris_sender *from, const char *data,
                         size_t len, char **ack, size_t *ack_len, struct gw_error *err);

#endif
