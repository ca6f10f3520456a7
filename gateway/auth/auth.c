/* auth.c -- client identity from certificates (OpenSSL) and role checks.
 *
 * The TLS layer has already verified the chain against the configured CA;
 * here the certificate is only named: SHA-256 fingerprint of the DER bytes
 * and RFC 2253 subject, looked up in the client table.
 */
#include "auth/auth.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define AUTH_MAX_SUBJECT 4096

struct auth_table {
    atomic_int refs;
    struct auth_identity *rows; /* templates copied into identities */
    size_t n_rows;
    char **subjects; /* row subjects (NULL when matched by fingerprint only) */
};

static enum gw_code dup_into(char **slot, const char *s)
{
    *slot = NULL;
    if (!s)
        return GW_OK;
    *slot = gw_strdup(s);
    return *slot ? GW_OK : GW_E_NOMEM;
}

static enum auth_role role_from_name(const char *name)
{
    if (strcmp(name, "gp") == 0)
        return AUTH_GP;
    if (strcmp(name, "ris") == 0)
        return AUTH_RIS;
    if (strcmp(name, "practice") == 0)
        return AUTH_PRACTICE;
    if (strcmp(name, "auditor") == 0)
        return AUTH_AUDITOR;
    if (strcmp(name, "admin") == 0)
        return AUTH_ADMIN;
    return AUTH_NONE;
}

static enum gw_code row_from_client(struct auth_identity *row, char **subject,
                                    const struct config_client *c)
{
    size_t i;

    memset(row, 0, sizeof *row);
    row->role = role_from_name(c->role);
    if (c->fingerprint)
        memcpy(row->fingerprint, c->fingerprint, 65);
    if (dup_into(&row->client_name, c->name) || dup_into(&row->org_id, c->org.id) ||
        dup_into(&row->org_name, c->org.name) || dup_into(&row->org_system, c->org.system) ||
        dup_into(&row->org_value, c->org.value) || dup_into(subject, c->subject))
        return GW_E_NOMEM;
    if (!c->n_sites)
        return GW_OK;
    row->sites = calloc(c->n_sites, sizeof *row->sites);
    if (!row->sites)
        return GW_E_NOMEM;
    row->n_sites = c->n_sites;
    for (i = 0; i < c->n_sites; i++)
        if (dup_into(&row->sites[i], c->sites[i]))
            return GW_E_NOMEM;
    return GW_OK;
}

enum gw_code auth_table_create(const struct config *cfg, struct auth_table **out,
                               struct gw_error *err)
{
    struct auth_table *t;
    size_t i;

    *out = NULL;
    t = calloc(1, sizeof *t);
    if (!t)
        return gw_fail(err, GW_E_NOMEM, "no memory for the client table");
    atomic_init(&t->refs, 1);
    t->rows = calloc(cfg->n_clients + 1, sizeof *t->rows);
    t->subjects = calloc(cfg->n_clients + 1, sizeof *t->subjects);
    if (!t->rows || !t->subjects)
        goto nomem;
    for (i = 0; i < cfg->n_clients; i++) {
        t->n_rows = i + 1;
        if (row_from_client(&t->rows[i], &t->subjects[i], &cfg->clients[i]))
            goto nomem;
    }
    *out = t;
    return GW_OK;
nomem:
    auth_table_destroy(t);
    return gw_fail(err, GW_E_NOMEM, "no memory for the client table");
}

struct auth_table *auth_table_ref(struct auth_table *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void auth_table_destroy(struct auth_table *t)
{
    size_t i;

    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    for (i = 0; i < t->n_rows; i++) {
        auth_identity_cleanup(&t->rows[i]);
        free(t->subjects[i]);
    }
    free(t->rows);
    free(t->subjects);
    free(t);
}

/* Reads subject and fingerprint from the DER certificate. */
static enum gw_code name_certificate(const unsigned char *der, size_t len, struct auth_identity *id,
                                     struct gw_error *err)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    BIO *bio = NULL;
    char *text;
    long n;
    enum gw_code rc = GW_OK;

    if (!x || p != der + len) {
        X509_free(x);
        return gw_fail(err, GW_E_INPUT, "the client certificate does not parse");
    }
    gw_sha256_hex(der, len, id->fingerprint);
    bio = BIO_new(BIO_s_mem());
    if (!bio || X509_NAME_print_ex(bio, X509_get_subject_name(x), 0,
                                   XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        rc = gw_fail(err, GW_E_NOMEM, "no memory to read the certificate subject");
        goto out;
    }
    n = BIO_get_mem_data(bio, &text);
    if (n < 0 || n > AUTH_MAX_SUBJECT) {
        rc = gw_fail(err, GW_E_LIMIT, "certificate subject longer than %d bytes", AUTH_MAX_SUBJECT);
        goto out;
    }
    id->subject = gw_strndup(text, (size_t)n);
    if (!id->subject)
        rc = gw_fail(err, GW_E_NOMEM, "no memory for the certificate subject");
out:
    BIO_free(bio);
    X509_free(x);
    return rc;
}

static const struct auth_identity *find_row(const struct auth_table *t,
                                            const struct auth_identity *id)
{
    size_t i;

    for (i = 0; i < t->n_rows; i++)
        if (t->rows[i].fingerprint[0] && strcmp(t->rows[i].fingerprint, id->fingerprint) == 0)
            return &t->rows[i];
    for (i = 0; i < t->n_rows; i++)
        if (t->subjects[i] && !t->rows[i].fingerprint[0] && id->subject &&
            strcmp(t->subjects[i], id->subject) == 0)
            return &t->rows[i];
    return NULL;
}

enum gw_code auth_identify(const struct auth_table *t, const unsigned char *der, size_t len,
                           struct auth_identity *id, struct gw_error *err)
{
    const struct auth_identity *row;
    char *subject;
    char fingerprint[65];
    enum gw_code rc;

    memset(id, 0, sizeof *id);
    if (!der || !len)
        return GW_OK;
    rc = name_certificate(der, len, id, err);
    if (rc)
        return rc;
    row = find_row(t, id);
    if (!row)
        return GW_OK;
    subject = id->subject;
    memcpy(fingerprint, id->fingerprint, sizeof fingerprint);
    id->subject = NULL;
    rc = auth_identity_copy(id, row);
    free(id->subject);
    id->subject = subject;
    memcpy(id->fingerprint, fingerprint, sizeof fingerprint);
    if (rc)
        return gw_fail(err, rc, "no memory for the client identity");
    return GW_OK;
}

enum gw_code auth_identify_name(const struct auth_table *t, const char *name,
                                struct auth_identity *id, struct gw_error *err)
{
    size_t i;

    memset(id, 0, sizeof *id);
    for (i = 0; i < t->n_rows; i++) {
        if (!t->rows[i].client_name || strcmp(t->rows[i].client_name, name) != 0)
            continue;
        if (auth_identity_copy(id, &t->rows[i]) != GW_OK ||
            (t->subjects[i] && !(id->subject = gw_strdup(t->subjects[i])))) {
            auth_identity_cleanup(id);
            return gw_fail(err, GW_E_NOMEM, "no memory for the client identity");
        }
        return GW_OK;
    }
    return gw_fail(err, GW_E_NOTFOUND, "no client called \"%s\" in the client table", name);
}

enum gw_code auth_identity_copy(struct auth_identity *dst, const struct auth_identity *src)
{
    size_t i;

    memset(dst, 0, sizeof *dst);
    dst->role = src->role;
    memcpy(dst->fingerprint, src->fingerprint, sizeof dst->fingerprint);
    if (dup_into(&dst->client_name, src->client_name) || dup_into(&dst->subject, src->subject) ||
        dup_into(&dst->org_id, src->org_id) || dup_into(&dst->org_name, src->org_name) ||
        dup_into(&dst->org_system, src->org_system) || dup_into(&dst->org_value, src->org_value))
        goto nomem;
    if (src->n_sites) {
        dst->sites = calloc(src->n_sites, sizeof *dst->sites);
        if (!dst->sites)
            goto nomem;
        dst->n_sites = src->n_sites;
        for (i = 0; i < src->n_sites; i++)
            if (dup_into(&dst->sites[i], src->sites[i]))
                goto nomem;
    }
    return GW_OK;
nomem:
    auth_identity_cleanup(dst);
    return GW_E_NOMEM;
}

void auth_identity_cleanup(struct auth_identity *id)
{
    size_t i;

    if (!id)
        return;
    free(id->client_name);
    free(id->subject);
    free(id->org_id);
    free(id->org_name);
    free(id->org_system);
    free(id->org_value);
    for (i = 0; i < id->n_sites; i++)
        free(id->sites[i]);
    free(id->sites);
    memset(id, 0, sizeof *id);
}

const char *auth_role_name(enum auth_role role)
{
    switch (role) {
    case AUTH_GP:
        return "gp";
    case AUTH_RIS:
        return "ris";
    case AUTH_PRACTICE:
        return "practice";
    case AUTH_AUDITOR:
        return "auditor";
    case AUTH_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

bool auth_allows(const struct auth_identity *id, unsigned mask)
{
    return id->role != AUTH_NONE && (id->role & mask) != 0;
}

bool auth_serves_site(const struct auth_identity *id, const char *site_id)
{
    size_t i;

    for (i = 0; site_id && i < id->n_sites; i++)
        if (strcmp(id->sites[i], site_id) == 0)
            return true;
    return false;
}
