/* test_auth.c -- certificates named by fingerprint or subject and mapped to
 * roles and organisations; the development PKI (make certs) is used. */
#include "check.h"
#include "auth/auth.h"

#include <stdlib.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

/* The DER bytes of a PEM certificate file (free()), or NULL. */
static unsigned char *der_of(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    unsigned char *der = NULL;
    int n;

    if (f)
        fclose(f);
    n = x ? i2d_X509(x, &der) : -1;
    X509_free(x);
    if (n <= 0)
        return NULL;
    *len = (size_t)n;
    return der;
}

static struct config *dev_config(void)
{
    struct config_flags flags = {0};
    struct config *cfg = NULL;

    config_load(&flags, &cfg, NULL);
    return cfg;
}

static void listed_certificates_get_their_role_and_organisation(void)
{
    struct config *cfg = dev_config();
    struct auth_table *t = NULL;
    struct auth_identity id;
    unsigned char *der;
    size_t len = 0;

    CHECK(cfg != NULL);
    if (!cfg)
        return;
    CHECK_INT(auth_table_create(cfg, &t, NULL), GW_OK);
    der = der_of("certs/dev/gp.pem", &len);
    CHECK(der != NULL);
    CHECK_INT(auth_identify(t, der, len, &id, NULL), GW_OK);
    CHECK_INT(id.role, AUTH_GP);
    CHECK_STR(id.org_id, "montorgueil");
    CHECK(strstr(id.subject, "CN=Dr Claire Martin") != NULL);
    CHECK_INT(strlen(id.fingerprint), 64);
    CHECK(auth_allows(&id, AUTH_GP | AUTH_RIS));
    CHECK(!auth_allows(&id, AUTH_AUDITOR));
    auth_identity_cleanup(&id);
    free(der);
    der = der_of("certs/dev/ris.pem", &len);
    CHECK_INT(auth_identify(t, der, len, &id, NULL), GW_OK);
    CHECK_INT(id.role, AUTH_RIS);
    CHECK(auth_serves_site(&id, "drouot"));
    CHECK(!auth_serves_site(&id, "elsewhere"));
    auth_identity_cleanup(&id);
    free(der);
    der = der_of("certs/dev/practice.pem", &len); /* the radiologist's software */
    CHECK_INT(auth_identify(t, der, len, &id, NULL), GW_OK);
    CHECK_INT(id.role, AUTH_PRACTICE);
    CHECK_STR(auth_role_name(id.role), "practice");
    CHECK_STR(id.org_id, "radiologie-paris");
    CHECK(auth_serves_site(&id, "bachaumont") && auth_serves_site(&id, "drouot"));
    CHECK(auth_allows(&id, AUTH_ANY_CLIENT) && !auth_allows(&id, AUTH_GP | AUTH_RIS));
    auth_identity_cleanup(&id);
    free(der);
    auth_table_destroy(t);
    config_destroy(cfg);
}

static void unlisted_missing_and_garbage_certificates_are_nobody(void)
{
    struct config *cfg = dev_config();
    struct auth_table *t = NULL;
    struct auth_identity id;
    unsigned char *der, junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    size_t len = 0;

    if (!cfg || auth_table_create(cfg, &t, NULL) != GW_OK)
        return;
    der = der_of("certs/dev/unlisted.pem", &len);
    CHECK_INT(auth_identify(t, der, len, &id, NULL), GW_OK);
    CHECK_INT(id.role, AUTH_NONE);
    CHECK(id.subject != NULL); /* named, for the audit trail, but not admitted */
    CHECK(!auth_allows(&id, AUTH_ANY_CLIENT));
    auth_identity_cleanup(&id);
    free(der);
    CHECK_INT(auth_identify(t, NULL, 0, &id, NULL), GW_OK);
    CHECK_INT(id.role, AUTH_NONE);
    CHECK_INT(auth_identify(t, junk, sizeof junk, &id, NULL), GW_E_INPUT);
    CHECK_INT(id.role, AUTH_NONE);
    auth_identity_cleanup(&id);
    auth_table_destroy(t);
    config_destroy(cfg);
}

static void subject_rows_match_exactly(void)
{
    struct config *cfg = dev_config();
    struct auth_table *t = NULL;
    struct auth_identity id;
    unsigned char *der;
    size_t len = 0;

    if (!cfg)
        return;
    free(cfg->clients[0].fingerprint);
    cfg->clients[0].fingerprint = NULL;
    cfg->clients[0].subject = gw_strdup("CN=Dr Claire Martin,O=Cabinet Médical Montorgueil,"
                                        "L=Paris,C=FR");
    CHECK_INT(auth_table_create(cfg, &t, NULL), GW_OK);
    der = der_of("certs/dev/gp.pem", &len);
    CHECK_INT(auth_identify(t, der, len, &id, NULL), GW_OK);
    CHECK_INT(id.role, AUTH_GP);
    auth_identity_cleanup(&id);
    free(der);
    auth_table_destroy(t);
    config_destroy(cfg);
}

int main(void)
{
    RUN(listed_certificates_get_their_role_and_organisation);
    RUN(unlisted_missing_and_garbage_certificates_are_nobody);
    RUN(subject_rows_match_exactly);
    return check_summary();
}
