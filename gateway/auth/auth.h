/* auth.h -- who is calling: client certificates mapped to roles and
 * organisations, and the per-role access rules (DESIGN §7).
 *
 * Owns:      the client table (a copy of the configuration's, refcounted so
 *            SIGHUP can swap it while requests still use the old one).
 * Promises:  an identity is AUTH_NONE unless the certificate's SHA-256
 *            fingerprint or exact subject DN is in the table; fingerprints
 *            win over subjects. The certificate chain itself is verified by
 *            the TLS layer before auth_identify() sees it.
 * Threads:   tables are immutable once built; any thread may read them.
 * Ownership: an identity owns copies of its strings (auth_identity_cleanup).
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "util/util.h"

enum auth_role {
    AUTH_NONE = 0,
    AUTH_GP = 1 << 0,
    AUTH_RIS = 1 << 1,
    AUTH_AUDITOR = 1 << 2,
    AUTH_ADMIN = 1 << 3,
    AUTH_PRACTICE = 1 << 4, /* the radiologist's software: triage decisions for its sites */
};
#define AUTH_ANY_CLIENT (AUTH_GP | AUTH_RIS | AUTH_AUDITOR | AUTH_ADMIN | AUTH_PRACTICE)

struct auth_identity {
    enum auth_role role; /* AUTH_NONE: no certificate, or one not in the table */
    char *client_name;   /* the table row's name; NULL when unknown */
    char *subject;       /* RFC 2253 subject DN of the certificate; NULL without one */
    char fingerprint[65];
    char *org_id; /* owning organisation of what this client creates */
    char *org_name;
    char *org_system;
    char *org_value;
    char **sites; /* roles ris and practice: the sites it serves */
    size_t n_sites;
};

struct auth_table;

/* Builds a table from cfg's clients. On GW_OK *out is new (refcount 1). */
enum gw_code auth_table_create(const struct config *cfg, struct auth_table **out,
                               struct gw_error *err);
/* Adds a reference; returns t. */
struct auth_table *auth_table_ref(struct auth_table *t);
/* Drops a reference; frees at zero. Accepts NULL. */
void auth_table_destroy(struct auth_table *t);

/* Identifies the DER-encoded client certificate der (len bytes, may be NULL
 * for "no certificate") against t. Always fills *id (role AUTH_NONE when not
 * listed); returns GW_E_INPUT when the certificate cannot be parsed,
 * GW_E_NOMEM on allocation failure. Free with auth_identity_cleanup(). */
enum gw_code auth_identify(const struct auth_table *t, const unsigned char *der, size_t len,
                           struct auth_identity *id, struct gw_error *err);
void auth_identity_cleanup(struct auth_identity *id);
/* The identity of the table's client called name, as a certificate of it
 * would give (for command-line work done in a client's name: import).
 * GW_E_NOTFOUND when the table has no such client. Free with
 * auth_identity_cleanup(). */
enum gw_code auth_identify_name(const struct auth_table *t, const char *name,
                                struct auth_identity *id, struct gw_error *err);
/* Deep copy of src into dst; GW_E_NOMEM on failure (dst then cleaned). */
enum gw_code auth_identity_copy(struct auth_identity *dst, const struct auth_identity *src);

/* The role's name ("gp", "ris", "practice", "auditor", "admin", "none"). */
const char *auth_role_name(enum auth_role role);
/* True when id's role is one of the roles in mask. */
bool auth_allows(const struct auth_identity *id, unsigned mask);
/* True when a ris or practice identity serves site_id. */
bool auth_serves_site(const struct auth_identity *id, const char *site_id);

#endif
