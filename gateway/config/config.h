/* config.h -- one validated configuration built from a JSON file, the
 * environment and command-line flags (in that order, later wins).
 *
 * Owns:      every string and array inside struct config.
 * Promises:  config_load() returns a config whose every value is within
 *            its documented bounds, or an error naming the key at fault;
 *            modules receive a const pointer and never read getenv().
 * Never:     keeps a reference to the JSON it was built from.
 * Threads:   a loaded config is immutable; SIGHUP builds a new one.
 * Ownership: strings passed in are borrowed and copied.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

/* The organisation a client certificate stands for. */
struct config_org {
    char *id;     /* our short id, e.g. "montorgueil"; stored as the owner */
    char *name;   /* display name */
    char *system; /* identifier system (FINESS, SIRET...), may be NULL */
    char *value;  /* identifier value, may be NULL */
};

/* One row of the client table: a certificate (by SHA-256 fingerprint and/or
 * subject DN) mapped to a role and an organisation. */
struct config_client {
    char *name;
    char *fingerprint; /* 64 lower-case hex digits, or NULL */
    char *subject;     /* RFC 2253 subject DN, or NULL */
    char *role;        /* "gp", "ris", "practice", "auditor", "admin" */
    struct config_org org;
    char **sites; /* roles ris and practice: the sites whose referrals it sees */
    size_t n_sites;
};

/* A performing site and the RIS destination of its orders. */
struct config_site {
    char *id;         /* "bachaumont" */
    char *name;       /* "Bachaumont Radiology" */
    char *org_system; /* Organization identifier a referral's performer names */
    char *org_value;
    char *address;            /* for the Organization resource, may be NULL */
    char *sending_app;        /* MSH-3 */
    char *sending_facility;   /* MSH-4 */
    char *receiving_app;      /* MSH-5 */
    char *receiving_facility; /* MSH-6 */
    char *message_type;       /* "OMI^O23" or "ORM^O01" */
    char *delivery;           /* "pull" or "push" */
    char *push_host;          /* push: MLLP peer */
    int push_port;
};

/* An MLLP peer (plain TCP: its address is all it shows) and who it speaks as:
 * a RIS client of the client table (its name and sites), or a name of its
 * own with the sites listed here. Exactly one of client and sites is set. */
struct config_mllp_peer {
    char *address; /* numeric IPv4 or IPv6 address */
    char *client;  /* a ris client's name, or NULL */
    char *name;    /* with sites: the identity in dedupe and audit, or NULL */
    char **sites;
    size_t n_sites;
};

struct config {
    /* http */
    char *listen;   /* HOST:PORT */
    char *tls_cert; /* PEM paths */
    char *tls_key;
    char *tls_ca;       /* CA that signs client certificates */
    char *clients_file; /* JSON client table (clients array), may be NULL */
    char *public_base;  /* base URL used in Location and links */
    long max_body_bytes;
    long max_connections;
    long max_connections_per_ip;
    long connection_timeout_s;
    long receive_deadline_s;
    long http_threads;
    long drain_timeout_s;
    long max_json_depth;
    long max_string_bytes;
    long max_array_items;
    long max_elements;
    /* mllp */
    char *mllp_listen; /* HOST:PORT, or "" to disable */
    char *mllp_allow;  /* addresses allowed to connect, comma-separated; "*" any */
    long mllp_max_frame_bytes;
    long mllp_timeout_s;
    /* store */
    char *store; /* sqlite:PATH or postgresql://... */
    long commit_timeout_ms;
    long max_batch;
    long read_connections;
    long pg_connect_retry_max_ms; /* PostgreSQL: cap of the start backoff */
    long push_lease_s;            /* PostgreSQL: MLLP push lease without renewal */
    /* mapping */
    char *mappings_dir;
    /* ris */
    char *default_site;
    long lease_s;
    long push_backoff_min_ms;
    long push_backoff_max_ms;
    long push_ack_timeout_ms;
    long max_pull;
    /* subscriptions (notify) */
    char *subscription_endpoints; /* allowed endpoint URL prefixes, comma-separated ("" none) */
    char *subscription_tls_cert;  /* the gateway's client certificate towards endpoints */
    char *subscription_tls_key;
    char *subscription_tls_ca; /* CA bundle endpoints' certificates must chain to */
    long subscription_workers;
    long subscription_connect_timeout_ms;
    long subscription_timeout_ms;
    long subscription_backoff_min_ms;
    long subscription_backoff_max_ms;
    long subscription_error_after;
    long subscription_max_attempts;
    long subscription_max_per_org;
    long subscription_max_batch;
    /* audit */
    char *instance_id;           /* AuditEvent.source.observer */
    char *audit_hmac_key;        /* optional secret for the chain, may be "" */
    long audit_refusal_period_s; /* window of the aggregated anonymous refusals */
    /* logging */
    char *log_level;
    /* the auditor's console */
    char *console_dir; /* folder of the console's HTML, CSS and JavaScript */
    /* tables */
    struct config_client *clients;
    size_t n_clients;
    struct config_site *sites;
    size_t n_sites;
    struct config_mllp_peer *mllp_peers;
    size_t n_mllp_peers;
};

/* Command-line overrides; NULL members leave the value alone. */
struct config_flags {
    const char *config_file;
    const char *listen;
    const char *mllp_listen;
    const char *store;
    const char *mappings_dir;
};

/* Builds the configuration: defaults (the development setup of DESIGN §8),
 * then the file flags->config_file when given, then GATEWAY_* environment
 * variables, then the flags. On GW_OK *out is new; free with config_destroy(). */
enum gw_code config_load(const struct config_flags *flags, struct config **out,
                         struct gw_error *err);
void config_destroy(struct config *cfg);

/* Looks up a client of the table by name; NULL when absent. */
const struct config_client *config_client_find(const struct config *cfg, const char *name);
/* The mllp_peers row for a numeric address ("::ffff:a.b.c.d" matches a.b.c.d); NULL when none. */
const struct config_mllp_peer *config_mllp_peer_find(const struct config *cfg, const char *address);
/* Looks up a site by id; NULL when absent. */
const struct config_site *config_site_find(const struct config *cfg, const char *id);
/* The site whose organisation identifier is (system, value); NULL when none. */
const struct config_site *config_site_by_identifier(const struct config *cfg, const char *system,
                                                    const char *value);
/* Splits "HOST:PORT" (or "[v6]:PORT"); host is copied into host (cap bytes). */
enum gw_code config_split_hostport(const char *text, char *host, size_t cap, int *port,
                                   struct gw_error *err);
/* Writes the option table (name, default, bounds, doc) as text, for --help. */
void config_describe(struct gw_buf *out);

#endif
