/* tables.c -- the client table and the site list of the configuration.
 *
 * Clients map a certificate (SHA-256 fingerprint and/or subject DN) to a role
 * and an organisation; sites say where each site's orders go (DESIGN §7).
 * Every row is checked here so the rest of the gateway can trust them.
 */
#include "config/config_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_SITES   256
#define CONFIG_MAX_CLIENTS 4096
#define CONFIG_WHERE_MAX   300

static const char *const roles[] = {"gp", "ris", "practice", "auditor", "admin", NULL};
static const char *const message_types[] = {"OMI^O23", "ORM^O01", NULL};
static const char *const deliveries[] = {"pull", "push", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

/* Copies member key of obj (a string) into *slot; required or optional. */
static enum gw_code take_string(json_t *obj, const char *key, bool required, char **slot,
                                const char *where, struct gw_error *err)
{
    json_t *v = json_object_get(obj, key);

    if (!v) {
        if (required)
            return gw_fail(err, GW_E_INPUT, "%s: \"%s\" is required", where, key);
        return GW_OK;
    }
    if (!json_is_string(v) || !*json_string_value(v))
        return gw_fail(err, GW_E_INPUT, "%s: \"%s\" must be a non-empty string", where, key);
    return config_set_string(slot, json_string_value(v), err);
}

static bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

static bool is_hex64(const char *s)
{
    size_t i;

    for (i = 0; s[i]; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
    return i == 64;
}

static enum gw_code parse_org(struct config_org *org, json_t *v, const char *where,
                              struct gw_error *err)
{
    enum gw_code rc;

    if (!json_is_object(v))
        return gw_fail(err, GW_E_INPUT, "%s: \"organization\" must be an object", where);
    rc = take_string(v, "id", true, &org->id, where, err);
    if (!rc)
        rc = take_string(v, "name", true, &org->name, where, err);
    if (!rc)
        rc = take_string(v, "system", false, &org->system, where, err);
    if (!rc)
        rc = take_string(v, "value", false, &org->value, where, err);
    return rc;
}

/* A "sites" array of site ids into *sites / *n_sites (absent: none). */
static enum gw_code parse_site_list(char ***sites, size_t *n_sites, json_t *arr, const char *where,
                                    struct gw_error *err)
{
    size_t i;
    json_t *v;

    if (!arr)
        return GW_OK;
    if (!json_is_array(arr) || json_array_size(arr) > CONFIG_MAX_SITES)
        return gw_fail(err, GW_E_INPUT, "%s: \"sites\" must be an array of site ids", where);
    *sites = calloc(json_array_size(arr) + 1, sizeof **sites);
    if (!*sites)
        return gw_fail(err, GW_E_NOMEM, "no memory for configuration");
    json_array_foreach (arr, i, v) {
        if (!json_is_string(v))
            return gw_fail(err, GW_E_INPUT, "%s: sites[%zu] must be a string", where, i);
        if (config_set_string(&(*sites)[i], json_string_value(v), err))
            return GW_E_NOMEM;
        *n_sites = i + 1;
    }
    return GW_OK;
}

static void free_site_list(char **sites, size_t n_sites)
{
    while (n_sites)
        free(sites[--n_sites]);
    free(sites);
}

/* Parses one entry of a table (a zeroed struct) from v. */
typedef enum gw_code (*parse_entry_fn)(void *entry, json_t *v, const char *where,
                                       struct gw_error *err);

/* Parses each member of the array arr, the table name of origin, into a new array of
 * entries of size bytes (one more, zeroed, at its end) given in *out even on failure,
 * with *n counting the entries begun (what the table's free function releases). */
static enum gw_code parse_entries(json_t *arr, const char *origin, const char *name, size_t size,
                                  parse_entry_fn parse, void **out, size_t *n, struct gw_error *err)
{
    char where[CONFIG_WHERE_MAX];
    char *entries;
    size_t i;
    json_t *v;
    enum gw_code rc;

    entries = calloc(json_array_size(arr) + 1, size);
    *out = entries;
    if (!entries)
        return gw_fail(err, GW_E_NOMEM, "no memory for configuration");
    json_array_foreach (arr, i, v) {
        snprintf(where, sizeof where, "%s: %s[%zu]", origin, name, i);
        *n = i + 1;
        rc = parse(entries + i * size, v, where, err);
        if (rc)
            return rc;
    }
    return GW_OK;
}

static enum gw_code parse_client(void *entry, json_t *v, const char *where, struct gw_error *err)
{
    struct config_client *c = entry;
    enum gw_code rc;

    if (!json_is_object(v))
        return gw_fail(err, GW_E_INPUT, "%s: must be an object", where);
    rc = take_string(v, "name", true, &c->name, where, err);
    if (!rc)
        rc = take_string(v, "fingerprint", false, &c->fingerprint, where, err);
    if (!rc)
        rc = take_string(v, "subject", false, &c->subject, where, err);
    if (!rc)
        rc = take_string(v, "role", true, &c->role, where, err);
    if (!rc)
        rc = parse_org(&c->org, json_object_get(v, "organization"), where, err);
    if (!rc)
        rc = parse_site_list(&c->sites, &c->n_sites, json_object_get(v, "sites"), where, err);
    if (rc)
        return rc;
    if (!c->fingerprint && !c->subject)
        return gw_fail(err, GW_E_INPUT, "%s: needs \"fingerprint\" or \"subject\"", where);
    if (c->fingerprint && !is_hex64(c->fingerprint))
        return gw_fail(err, GW_E_INPUT, "%s: fingerprint must be 64 lower-case hex digits", where);
    if (!one_of(c->role, roles))
        return gw_fail(err, GW_E_INPUT,
                       "%s: role \"%s\" is not gp, ris, practice, auditor or admin", where,
                       c->role);
    return GW_OK;
}

enum gw_code config_parse_clients(struct config *cfg, json_t *arr, const char *origin,
                                  struct gw_error *err)
{
    void *entries = NULL;
    enum gw_code rc;

    if (!json_is_array(arr) || json_array_size(arr) > CONFIG_MAX_CLIENTS)
        return gw_fail(err, GW_E_INPUT, "%s: \"clients\" must be an array (at most %d)", origin,
                       CONFIG_MAX_CLIENTS);
    config_free_clients(cfg);
    rc = parse_entries(arr, origin, "clients", sizeof *cfg->clients, parse_client, &entries,
                       &cfg->n_clients, err);
    cfg->clients = entries;
    return rc;
}

static enum gw_code parse_site(void *entry, json_t *v, const char *where, struct gw_error *err)
{
    struct config_site *s = entry;
    struct {
        const char *key;
        char **slot;
        bool required;
    } fields[] = {
        {"id", &s->id, true},
        {"name", &s->name, true},
        {"org_system", &s->org_system, true},
        {"org_value", &s->org_value, true},
        {"address", &s->address, false},
        {"sending_app", &s->sending_app, true},
        {"sending_facility", &s->sending_facility, true},
        {"receiving_app", &s->receiving_app, true},
        {"receiving_facility", &s->receiving_facility, true},
        {"message_type", &s->message_type, true},
        {"delivery", &s->delivery, true},
        {"push_host", &s->push_host, false},
    };
    json_t *port;
    size_t i;

    if (!json_is_object(v))
        return gw_fail(err, GW_E_INPUT, "%s: must be an object", where);
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (take_string(v, fields[i].key, fields[i].required, fields[i].slot, where, err))
            return err ? err->code : GW_E_INPUT;
    if (!one_of(s->message_type, message_types))
        return gw_fail(err, GW_E_INPUT, "%s: message_type must be OMI^O23 or ORM^O01", where);
    if (!one_of(s->delivery, deliveries))
        return gw_fail(err, GW_E_INPUT, "%s: delivery must be pull or push", where);
    port = json_object_get(v, "push_port");
    if (port && (!json_is_integer(port) || json_integer_value(port) < 1 ||
                 json_integer_value(port) > 65535))
        return gw_fail(err, GW_E_INPUT, "%s: push_port must be a port number", where);
    s->push_port = port ? (int)json_integer_value(port) : 0;
    if (strcmp(s->delivery, "push") == 0 && (!s->push_host || !s->push_port))
        return gw_fail(err, GW_E_INPUT, "%s: push delivery needs push_host and push_port", where);
    return GW_OK;
}

enum gw_code config_parse_sites(struct config *cfg, json_t *arr, const char *origin,
                                struct gw_error *err)
{
    void *entries = NULL;
    enum gw_code rc;

    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > CONFIG_MAX_SITES)
        return gw_fail(err, GW_E_INPUT, "%s: \"sites\" must be a non-empty array (at most %d)",
                       origin, CONFIG_MAX_SITES);
    config_free_sites(cfg);
    rc = parse_entries(arr, origin, "sites", sizeof *cfg->sites, parse_site, &entries,
                       &cfg->n_sites, err);
    cfg->sites = entries;
    return rc;
}

static enum gw_code parse_mllp_peer(void *entry, json_t *v, const char *where, struct gw_error *err)
{
    struct config_mllp_peer *m = entry;
    unsigned char addr[16];
    enum gw_code rc;

    if (!json_is_object(v))
        return gw_fail(err, GW_E_INPUT, "%s: must be an object", where);
    rc = take_string(v, "address", true, &m->address, where, err);
    if (!rc)
        rc = take_string(v, "client", false, &m->client, where, err);
    if (!rc)
        rc = take_string(v, "name", false, &m->name, where, err);
    if (!rc)
        rc = parse_site_list(&m->sites, &m->n_sites, json_object_get(v, "sites"), where, err);
    if (rc)
        return rc;
    if (inet_pton(AF_INET, m->address, addr) != 1 && inet_pton(AF_INET6, m->address, addr) != 1)
        return gw_fail(err, GW_E_INPUT, "%s: address \"%s\" is not a numeric IP address", where,
                       m->address);
    if (!m->client == !m->n_sites)
        return gw_fail(err, GW_E_INPUT,
                       "%s: give either \"client\" (a ris client) or \"name\" and \"sites\"",
                       where);
    if (!m->name != !m->n_sites)
        return gw_fail(err, GW_E_INPUT, "%s: \"name\" goes with \"sites\" (and only there)", where);
    return GW_OK;
}

enum gw_code config_parse_mllp_peers(struct config *cfg, json_t *arr, const char *origin,
                                     struct gw_error *err)
{
    void *entries = NULL;
    enum gw_code rc;

    if (!json_is_array(arr) || json_array_size(arr) > CONFIG_MAX_CLIENTS)
        return gw_fail(err, GW_E_INPUT, "%s: \"mllp_peers\" must be an array (at most %d)", origin,
                       CONFIG_MAX_CLIENTS);
    config_free_mllp_peers(cfg);
    rc = parse_entries(arr, origin, "mllp_peers", sizeof *cfg->mllp_peers, parse_mllp_peer,
                       &entries, &cfg->n_mllp_peers, err);
    cfg->mllp_peers = entries;
    return rc;
}

static enum gw_code validate_mllp_peers(const struct config *cfg, struct gw_error *err)
{
    size_t i, k;

    for (i = 0; i < cfg->n_mllp_peers; i++) {
        const struct config_mllp_peer *m = &cfg->mllp_peers[i];
        const struct config_client *c = config_client_find(cfg, m->client);

        for (k = 0; k < i; k++)
            if (strcmp(cfg->mllp_peers[k].address, m->address) == 0)
                return gw_fail(err, GW_E_INPUT, "mllp_peers: address %s is listed twice",
                               m->address);
        if (m->client && (!c || strcmp(c->role, "ris") != 0))
            return gw_fail(err, GW_E_INPUT, "mllp_peers[%zu]: \"%s\" is not a ris client", i,
                           m->client);
        for (k = 0; k < m->n_sites; k++)
            if (!config_site_find(cfg, m->sites[k]))
                return gw_fail(err, GW_E_INPUT, "mllp_peers[%zu]: unknown site \"%s\"", i,
                               m->sites[k]);
    }
    return GW_OK;
}

static enum gw_code validate_tables(const struct config *cfg, struct gw_error *err)
{
    size_t i, k;

    for (i = 0; i < cfg->n_sites; i++)
        for (k = 0; k < i; k++)
            if (strcmp(cfg->sites[i].id, cfg->sites[k].id) == 0)
                return gw_fail(err, GW_E_INPUT, "site \"%s\" is listed twice", cfg->sites[i].id);
    for (i = 0; i < cfg->n_clients; i++) {
        const struct config_client *c = &cfg->clients[i];

        if ((strcmp(c->role, "ris") == 0 || strcmp(c->role, "practice") == 0) && c->n_sites == 0)
            return gw_fail(err, GW_E_INPUT, "client \"%s\": a %s client needs \"sites\"", c->name,
                           c->role);
        for (k = 0; k < c->n_sites; k++)
            if (!config_site_find(cfg, c->sites[k]))
                return gw_fail(err, GW_E_INPUT, "client \"%s\": unknown site \"%s\"", c->name,
                               c->sites[k]);
    }
    if (!config_site_find(cfg, cfg->default_site))
        return gw_fail(err, GW_E_INPUT, "default_site \"%s\" is not among the sites",
                       cfg->default_site);
    return validate_mllp_peers(cfg, err);
}

enum gw_code config_validate(const struct config *cfg, struct gw_error *err)
{
    char host[256];
    int port;

    if (config_split_hostport(cfg->listen, host, sizeof host, &port, err))
        return gw_fail(err, GW_E_INPUT, "listen: \"%s\" is not HOST:PORT", cfg->listen);
    if (*cfg->mllp_listen && config_split_hostport(cfg->mllp_listen, host, sizeof host, &port, err))
        return gw_fail(err, GW_E_INPUT, "mllp_listen: \"%s\" is not HOST:PORT", cfg->mllp_listen);
    if (strncmp(cfg->store, "sqlite:", 7) != 0 && strncmp(cfg->store, "postgresql://", 13) != 0 &&
        strncmp(cfg->store, "postgres://", 11) != 0)
        return gw_fail(err, GW_E_INPUT, "store: \"%s\" is neither sqlite:PATH nor postgresql://...",
                       strchr(cfg->store, '@') ? "(a URL with credentials)" : cfg->store);
    if (!one_of(cfg->log_level, log_levels))
        return gw_fail(err, GW_E_INPUT, "log_level: \"%s\" is not debug, info, warn or error",
                       cfg->log_level);
    if (cfg->push_backoff_min_ms > cfg->push_backoff_max_ms)
        return gw_fail(err, GW_E_INPUT, "push_backoff_min_ms exceeds push_backoff_max_ms");
    if (cfg->subscription_backoff_min_ms > cfg->subscription_backoff_max_ms)
        return gw_fail(err, GW_E_INPUT,
                       "subscription_backoff_min_ms exceeds subscription_backoff_max_ms");
    if (cfg->n_clients == 0)
        return gw_fail(err, GW_E_INPUT, "no clients configured: nobody could connect");
    return validate_tables(cfg, err);
}

void config_free_clients(struct config *cfg)
{
    size_t i;

    for (i = 0; i < cfg->n_clients; i++) {
        struct config_client *c = &cfg->clients[i];

        free(c->name);
        free(c->fingerprint);
        free(c->subject);
        free(c->role);
        free(c->org.id);
        free(c->org.name);
        free(c->org.system);
        free(c->org.value);
        free_site_list(c->sites, c->n_sites);
    }
    free(cfg->clients);
    cfg->clients = NULL;
    cfg->n_clients = 0;
}

void config_free_sites(struct config *cfg)
{
    size_t i;

    for (i = 0; i < cfg->n_sites; i++) {
        struct config_site *s = &cfg->sites[i];
        char *fields[] = {s->id,
                          s->name,
                          s->org_system,
                          s->org_value,
                          s->address,
                          s->sending_app,
                          s->sending_facility,
                          s->receiving_app,
                          s->receiving_facility,
                          s->message_type,
                          s->delivery,
                          s->push_host};
        size_t k;

        for (k = 0; k < sizeof fields / sizeof fields[0]; k++)
            free(fields[k]);
    }
    free(cfg->sites);
    cfg->sites = NULL;
    cfg->n_sites = 0;
}

void config_free_mllp_peers(struct config *cfg)
{
    size_t i;

    for (i = 0; i < cfg->n_mllp_peers; i++) {
        struct config_mllp_peer *m = &cfg->mllp_peers[i];

        free(m->address);
        free(m->client);
        free(m->name);
        free_site_list(m->sites, m->n_sites);
    }
    free(cfg->mllp_peers);
    cfg->mllp_peers = NULL;
    cfg->n_mllp_peers = 0;
}
