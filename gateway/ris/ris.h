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
 * Threads:   ris_order_enqueue on the store writer thread; handlers on HTTP
 *            connection threads; everything else is internal.
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
#define RIS_STATUS_SYSTEM "https://fhir-gateway.example/fhir/CodeSystem/referral-status"
#define RIS_STATUS_RECEIVED "received"   /* accepted by the gateway, order queued */
#define RIS_STATUS_TRIAGE "triage"       /* no procedure mapped: the practice decides */
#define RIS_STATUS_ACCEPTED "accepted"   /* the RIS accepted the order (ORC-1 OK) */
#define RIS_STATUS_REJECTED "rejected"   /* ORC-1 UA */
#define RIS_STATUS_SCHEDULED "scheduled" /* ORC-5 SC, SIU^S12/S13 */
#define RIS_STATUS_IN_PROGRESS "in-progress"
#define RIS_STATUS_COMPLETED "completed"
#define RIS_STATUS_REPORTED "reported"   /* ORU^R01: the report is available */
#define RIS_STATUS_CANCELLED "cancelled"
#define RIS_STATUS_ON_HOLD "on-hold"
#define RIS_STATUS_DELIVERY_FAILED "delivery-failed" /* the order went to dead letters */
/* The triage flags of the referral are Task.input entries typed with this system
 * (codes from the mapping's MAP_CS_TRIAGE), valueString the reason. */

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
/* The MLLP port bound (0 when not listening). */
int ris_mllp_port(const struct ris *ris);
/* Stops threads (finishing the message in hand) and frees. Accepts NULL. */
void ris_destroy(struct ris *ris);

/* ------------------------------------------------------------ orders */

/* A referral as the order builder sees it (all borrowed, resolved by rest/). */
struct ris_referral {
    json_t *service_request;     /* stored form: id and meta.versionId set */
    json_t *patient;             /* the subject, may be NULL */
    json_t *requester;           /* Practitioner or PractitionerRole, may be NULL */
    json_t *const *conditions;   /* reasonReference Conditions */
    size_t n_conditions;
    const struct map_decision *decision; /* procedure, region, laterality, flags; may be NULL */
    const struct config_site *site;      /* where the order goes */
};

enum ris_order_kind {
    RIS_ORDER_NEW,    /* ORC-1 NW */
    RIS_ORDER_CHANGE, /* ORC-1 XO: the referral was amended */
    RIS_ORDER_CANCEL, /* ORC-1 CA: the referral was revoked */
};

/* Builds the order message for r (OMI^O23 or ORM^O01 as r->site says) and
 * adds it to the outbox inside txn. control_id (may be NULL) receives the
 * new MSH-10 (RIS_MAX_CONTROL_ID bytes). */
#define RIS_MAX_CONTROL_ID 64
enum gw_code ris_order_enqueue(struct ris *ris, struct store_txn *txn, const struct ris_referral *r,
                               enum ris_order_kind kind, char *control_id, struct gw_error *err);

/* ------------------------------------------------------------ HTTP (role ris) */

/* GET /ris/orders?max=N: leases up to N pending orders of the client's sites
 * and answers them as one HL7 v2 batch (FHS/BHS ... BTS/FTS, application/hl7-v2). */
void ris_handle_pull(struct ris *ris, struct http_request *req, struct http_response *resp);
/* POST /ris/acks: one ACK or a batch of ACKs settling pulled orders; answers
 * an HL7 v2 ACK (or a batch of them) saying what was settled. */
void ris_handle_acks(struct ris *ris, struct http_request *req, struct http_response *resp);
/* POST /ris/messages: an inbound message (ORM/OMI status, SIU, ORU) or a
 * batch; answers the ACK(s). */
void ris_handle_messages(struct ris *ris, struct http_request *req, struct http_response *resp);

/* Processes one inbound ER7 message from sender (peer address or client
 * name) as the MLLP listener and POST /ris/messages do: on return *ack is a
 * new ER7 ACK (free()) to send back, after its effects are committed. */
enum gw_code ris_inbound(struct ris *ris, const char *sender, const struct auth_identity *who,
                         const char *data, size_t len, char **ack, size_t *ack_len,
                         struct gw_error *err);

#endif
