/* options.c -- every configuration option: name, type, default, bounds, doc.
 *
 * This table is the single source for defaults, validation, the environment
 * variable names (GATEWAY_<NAME>) and the --help text. Defaults are the
 * development setup of DESIGN §8.
 */
#include "config/config_int.h"

#include <stddef.h>

#define S(field, def, doc)                                                                         \
    {                                                                                              \
#field, OPT_STRING, offsetof(struct config, field), def, 0, 0, 0, doc                      \
    }
#define L(field, def, lo, hi, doc)                                                                 \
    {                                                                                              \
#field, OPT_LONG, offsetof(struct config, field), NULL, def, lo, hi, doc                   \
    }

const struct option_row config_options[] = {
    S(listen, "127.0.0.1:8443", "HTTPS listen address HOST:PORT"),
    S(tls_cert, "certs/dev/server.pem", "server certificate chain (PEM)"),
    S(tls_key, "certs/dev/server.key", "server private key (PEM)"),
    S(tls_ca, "certs/dev/ca.pem", "CA bundle that client certificates must chain to (PEM)"),
    S(clients_file, "certs/dev/clients.json", "client table file: {\"clients\": [...]}"),
    S(public_base, "", "base URL in Location headers and links (default https://LISTEN/fhir)"),
    L(max_body_bytes, 4194304, 1024, 1073741824, "largest request body accepted (413 beyond)"),
    L(max_connections, 256, 4, 65536, "concurrent HTTPS connections"),
    L(max_connections_per_ip, 128, 1, 65536, "concurrent HTTPS connections from one address"),
    L(connection_timeout_s, 30, 1, 3600, "idle time before a connection is closed"),
    L(receive_deadline_s, 10, 1, 3600,
      "time a client has to send a whole request, headers and body, from its first byte"),
    L(http_threads, 0, 0, 256, "threads serving HTTPS connections (0: one per core)"),
    L(drain_timeout_s, 20, 0, 3600, "time given to requests in flight on SIGTERM"),
    L(max_json_depth, 64, 8, 1024, "deepest nesting of a FHIR resource"),
    L(max_string_bytes, 1048576, 64, 67108864, "longest string value in a resource"),
    L(max_array_items, 10000, 8, 1000000, "longest array in a resource"),
    L(max_elements, 200000, 64, 10000000, "most elements (values) in one resource"),
    S(mllp_listen, "127.0.0.1:2575", "MLLP listen address HOST:PORT, empty to disable"),
    S(mllp_allow, "127.0.0.1,::1",
      "addresses allowed to send over MLLP (plain TCP), comma-separated, or * for any"),
    L(mllp_max_frame_bytes, 1048576, 1024, 67108864, "largest MLLP frame accepted"),
    L(mllp_timeout_s, 30, 1, 3600, "MLLP read timeout per frame"),
    S(store, "sqlite:var/gateway.db", "store URL: sqlite:PATH or postgresql://..."),
    L(commit_timeout_ms, 10000, 100, 600000, "longest wait for a commit before 503"),
    L(max_batch, 256, 1, 100000, "most requests committed together (group commit)"),
    L(read_connections, 8, 1, 256, "database connections kept for readers"),
    L(pg_connect_retry_max_ms, 30000, 100, 3600000,
      "PostgreSQL store: longest wait between connection attempts at start (it retries until "
      "SIGTERM)"),
    L(push_lease_s, 15, 2, 3600,
      "PostgreSQL store: how long an instance's lease on a site's MLLP push lasts unrenewed "
      "(another instance takes over after it)"),
    S(mappings_dir, "mappings", "folder of ConceptMap files and triage rules"),
    S(default_site, "bachaumont", "site for referrals without a performer"),
    L(lease_s, 300, 1, 86400, "how long a pulled order stays leased before redelivery"),
    L(push_backoff_min_ms, 500, 10, 600000, "first retry delay of an MLLP push"),
    L(push_backoff_max_ms, 60000, 10, 3600000, "longest retry delay of an MLLP push"),
    L(push_ack_timeout_ms, 10000, 100, 600000, "wait for the RIS ACK of a pushed message"),
    L(max_pull, 100, 1, 10000, "most orders one GET /ris/orders returns"),
    S(subscription_endpoints, "",
      "https URL prefixes Subscription endpoints must fall under, comma-separated (empty: none)"),
    S(subscription_tls_cert, "certs/dev/notifier.pem",
      "client certificate the gateway presents to Subscription endpoints (PEM)"),
    S(subscription_tls_key, "certs/dev/notifier.key", "its private key (PEM)"),
    S(subscription_tls_ca, "certs/dev/ca.pem",
      "CA bundle Subscription endpoints' certificates must chain to (PEM)"),
    L(subscription_workers, 2, 1, 64, "threads delivering notifications"),
    L(subscription_connect_timeout_ms, 5000, 100, 60000,
      "connect and TLS handshake time allowed per notification attempt"),
    L(subscription_timeout_ms, 10000, 100, 600000,
      "time allowed to send a notification and read the answer's head"),
    L(subscription_backoff_min_ms, 1000, 10, 3600000, "first retry delay of a notification"),
    L(subscription_backoff_max_ms, 300000, 10, 86400000, "longest retry delay of a notification"),
    L(subscription_error_after, 3, 1, 1000,
      "failed attempts in a row before a Subscription shows status error"),
    L(subscription_max_attempts, 20, 1, 100000,
      "attempts before a notification is given up (dead letter)"),
    L(subscription_max_per_org, 16, 1, 1000, "Subscriptions one organisation may hold"),
    L(subscription_max_batch, 100, 1, 1000,
      "events one notification may carry when several wait for the same Subscription"),
    S(instance_id, "fhir-gateway", "this instance's name in AuditEvent.source"),
    S(audit_hmac_key, "", "secret mixed into the audit hash chain (empty: none)"),
    L(audit_refusal_period_s, 60, 1, 3600,
      "refusals of clients without an identity: one AuditEvent per address and this period"),
    S(log_level, "info", "debug, info, warn or error"),
    S(console_dir, "console",
      "folder of the auditor's console served at /console/ (installed: "
      "/usr/share/fhir-gateway/console)"),
};

const size_t config_n_options = sizeof config_options / sizeof config_options[0];

const char config_default_sites[] =
    "[{\"id\": \"bachaumont\", \"name\": \"Bachaumont Radiology\","
    "  \"org_system\": \"urn:oid:1.2.250.1.71.4.2.2\", \"org_value\": \"750000102\","
    "  \"address\": \"75002 Paris\", \"sending_app\": \"FHIRGW\", \"sending_facility\": \"FHIRGW\","
    "  \"receiving_app\": \"RIS\", \"receiving_facility\": \"BACHAUMONT\","
    "  \"message_type\": \"OMI^O23\", \"delivery\": \"pull\"},"
    " {\"id\": \"drouot\", \"name\": \"Clinique Drouot\","
    "  \"org_system\": \"urn:oid:1.2.250.1.71.4.2.2\", \"org_value\": \"750000109\","
    "  \"address\": \"75009 Paris\", \"sending_app\": \"FHIRGW\", \"sending_facility\": \"FHIRGW\","
    "  \"receiving_app\": \"RIS\", \"receiving_facility\": \"DROUOT\","
    "  \"message_type\": \"ORM^O01\", \"delivery\": \"pull\"}]";
